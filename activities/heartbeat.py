"""Heartbeats for activities that wait on one long call (an image pull, a container stop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity

HEARTBEAT_EVERY_SECONDS = 1.0


@asynccontextmanager
async def heartbeating(*details: object) -> AsyncIterator[None]:
    """Heartbeat in the background while the body runs, so Temporal can tell a slow step from a
    dead worker (and deliver cancellation) without a heartbeat timeout as long as the slowest pull."""

    async def beat() -> None:
        while True:
            activity.heartbeat(*details)
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
