"""What the workflows share about running their steps: finishing one through a cancellation, and the
reason a failed one gives the user (deterministic helpers, no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio.exceptions import ApplicationError, FailureError

T = TypeVar("T")


async def to_the_end(awaitable: Awaitable[T]) -> T:
    """Await to completion even if the workflow is cancelled meanwhile: a newer deploy arriving while a
    failed or superseded one compensates must not cut its compensations or its final status short (a
    bare shield would, by raising CancelledError out of the loop)."""
    task = asyncio.ensure_future(awaitable)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()


def reason_of(exc: BaseException) -> str:
    """The innermost message: what the activity (or PVE) said, not Temporal's wrapping."""
    while getattr(exc, "cause", None) is not None:
        exc = exc.cause  # type: ignore[attr-defined]
    if isinstance(exc, FailureError):
        # str() of an ApplicationError is "<type>: <message>"; the user is shown the message.
        return exc.message or type(exc).__name__
    return str(exc) or type(exc).__name__


def error_type(exc: BaseException) -> str | None:
    """The ApplicationError type under Temporal's wrapping (PveNodeUnavailable, ...)."""
    while exc is not None:
        if isinstance(exc, ApplicationError):
            return exc.type
        exc = getattr(exc, "cause", None)  # type: ignore[assignment]
    return None
