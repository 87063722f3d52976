"""A deployment's build log: the kept copy, or live lines over Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from redis.asyncio import Redis

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.schemas.build_logs import BuildLog
from core.build_logs import follow_build_log, read_build_log
from core.contracts import DeploymentStatus
from core.db import Database
from core.models import Deployment
from domain.authorization import Permission, deployment_for

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])

FOLLOW_LIMIT_SECONDS = 3600  # a follower is let go after an hour; it can reconnect
WATCH_SECONDS = 2.0  # while no line comes, how often the deployment is checked for having ended


@router.get(
    "/{deployment_id}/build-logs",
    operation_id="get_build_logs",
    response_model=BuildLog,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def get_build_logs(
    deployment_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    follow: bool = False,
) -> BuildLog | StreamingResponse:
    """The build output, line by line. With `follow=true`, a `text/event-stream` of the lines so far
    and then each new one as the builder prints it, ending with an `end` event."""
    deployment = await deployment_for(session, actor, Permission.READ, deployment_id)
    if deployment.source.get("kind", "image") == "image":  # a prebuilt image: nothing was built
        return BuildLog(deployment_id=deployment.id, lines=[], complete=True)
    if deployment.build_log is not None and not follow:
        return BuildLog(deployment_id=deployment.id, lines=deployment.build_log.split("\n"), complete=True)
    redis = Redis.from_url(settings.redis_url)
    if not follow:
        try:
            lines = await read_build_log(redis, deployment.id)
        finally:
            await redis.aclose()
        done = DeploymentStatus(deployment.status) not in (DeploymentStatus.QUEUED, DeploymentStatus.BUILDING)
        return BuildLog(deployment_id=deployment.id, lines=lines, complete=done)
    db: Database = request.app.state.db
    return StreamingResponse(_events(db, redis, deployment.id), media_type="text/event-stream")


async def _events(db: Database, redis: Redis, deployment_id: str) -> AsyncIterator[str]:
    lines = follow_build_log(redis, deployment_id)
    deadline = asyncio.get_running_loop().time() + FOLLOW_LIMIT_SECONDS
    try:
        while asyncio.get_running_loop().time() < deadline:
            line = asyncio.ensure_future(anext(lines))
            while not line.done():
                await asyncio.wait({line}, timeout=WATCH_SECONDS)
                if not line.done() and not await _building(db, deployment_id):
                    # It ended without a build (a plan that failed, a newer deploy): nothing will come.
                    line.cancel()
                    yield "event: end\ndata: {}\n\n"
                    return
            try:
                yield f"data: {json.dumps(line.result())}\n\n"
            except StopAsyncIteration:
                yield "event: end\ndata: {}\n\n"
                return
        yield "event: timeout\ndata: {}\n\n"
    finally:
        await lines.aclose()
        await redis.aclose()


async def _building(db: Database, deployment_id: str) -> bool:
    async with db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
    return deployment is not None and deployment.status in (
        DeploymentStatus.QUEUED,
        DeploymentStatus.BUILDING,
    )
