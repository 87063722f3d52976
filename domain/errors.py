"""What an operation answers when it cannot do what was asked: one class per kind of answer.

The API maps each to its HTTP status in one place (api/errors.py); an activity lets them fail the
attempt with the same message. Every message names what it is about (the object, the field, the
component) and why, so that the user can act on it.
"""

from __future__ import annotations


class DomainError(Exception):
    """The operation did not happen; nothing of it is left half done."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The object does not exist (or the caller may not know that it does)."""

    def __init__(self, kind: str, identifier: str) -> None:
        super().__init__(f"{kind} {identifier!r} not found")
        self.kind = kind
        self.identifier = identifier


class Conflict(DomainError):
    """The object's current state does not allow the operation (a node not READY, a name taken)."""


class Invalid(DomainError):
    """A value given is refused: `field` names it (dotted, as in the request body)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Forbidden(DomainError):
    """The caller is known and may not do this."""


class Unavailable(DomainError):
    """A component the operation needs cannot be used now (Temporal, the secret key): try again later."""


class Unauthenticated(DomainError):
    """The credential given is unknown, used up or expired."""


class RateLimited(DomainError):
    """Too many attempts: the next one is accepted after `retry_after` seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
