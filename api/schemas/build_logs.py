"""A deployment's build log."""

from __future__ import annotations

from pydantic import BaseModel


class BuildLog(BaseModel):
    deployment_id: str
    lines: list[str]
    complete: bool
