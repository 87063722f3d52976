"""A deployment's build log: the kept copy, or live lines over Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from redis.asyncio import Redis

from activities.build_logs import follow_build_log, read_build_log
from api.deps import CurrentActor, SessionDep, SettingsDep
from api.store import get_or_404
from core.contracts import DeploymentStatus
from core.models import Deployment

router = APIRouter(tags=["deployments"])

FOLLOW_LIMIT_SECONDS = 3600  # a follower is let go after an hour; it can reconnect


class BuildLog(BaseModel):
    deployment_id: str
    lines: list[str]
    complete: bool


@router.get(
    "/v1/deployments/{deployment_id}/build-logs",
    operation_id="get_build_logs",
    response_model=BuildLog,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def get_build_logs(
    deployment_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: CurrentActor,
    follow: bool = False,
) -> BuildLog | StreamingResponse:
    """The build output, line by line. With `follow=true`, a `text/event-stream` of the lines so far
    and then each new one as the builder prints it, ending with an `end` event."""
    deployment = await get_or_404(session, Deployment, deployment_id)
    if deployment.source.get("kind", "image") == "image":  # a prebuilt image: nothing was built
        return BuildLog(deployment_id=deployment.id, lines=[], complete=True)
    if deployment.build_log is not None and not follow:
        return BuildLog(deployment_id=deployment.id, lines=deployment.build_log.splitlines(), complete=True)
    redis = Redis.from_url(settings.redis_url)
    if not follow:
        try:
            lines = await read_build_log(redis, deployment.id)
        finally:
            await redis.aclose()
        done = DeploymentStatus(deployment.status) not in (DeploymentStatus.QUEUED, DeploymentStatus.BUILDING)
        return BuildLog(deployment_id=deployment.id, lines=lines, complete=done)
    return StreamingResponse(_events(redis, deployment.id), media_type="text/event-stream")


async def _events(redis: Redis, deployment_id: str) -> AsyncIterator[str]:
    try:
        async with asyncio.timeout(FOLLOW_LIMIT_SECONDS):
            async for line in follow_build_log(redis, deployment_id):
                yield f"data: {json.dumps(line)}\n\n"
        yield "event: end\ndata: {}\n\n"
    except TimeoutError:
        yield "event: timeout\ndata: {}\n\n"
    finally:
        await redis.aclose()
