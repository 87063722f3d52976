"""Errors are values: every failure of a /v1 call becomes an AgentError body with an HTTP status."""

from __future__ import annotations

from core.contracts import AgentError


class AgentFailure(Exception):
    """A step of an agent call failed; carries the HTTP status and the AgentError to answer with."""

    def __init__(self, status_code: int, step: str, reason: str, replica_id: str | None = None) -> None:
        super().__init__(f"{step}: {reason}")
        self.status_code = status_code
        self.error = AgentError(step=step, reason=reason, replica_id=replica_id)
