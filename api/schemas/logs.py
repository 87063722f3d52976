"""A service's runtime logs (the lines and notices are the agents' contracts: core/contracts.py)."""

from __future__ import annotations

from pydantic import BaseModel

from core.contracts import LogLine, LogNotice


class ServiceLogsRead(BaseModel):
    service_id: str
    environment: str
    lines: list[LogLine]
    notices: list[LogNotice]
