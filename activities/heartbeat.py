"""Heartbeats for activities that wait on long calls (an image pull, a build, a container stop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from temporalio import activity

HEARTBEAT_EVERY_SECONDS = 1.0


@asynccontextmanager
async def heartbeating(progress: Callable[[], object] | None = None) -> AsyncIterator[None]:
    """Heartbeat in the background while the body runs, so Temporal can tell a slow step from a
    dead worker (and deliver cancellation) without a heartbeat timeout as long as the slowest pull.
    `progress` gives the details of each heartbeat (say, the build's line count so far)."""

    async def beat() -> None:
        while True:
            activity.heartbeat(*(() if progress is None else (progress(),)))
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
