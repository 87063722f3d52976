"""A service's runtime logs: the last lines, merged from every node its replicas ran on, or followed
live over Server-Sent Events (domain/logs.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.schemas.common import EnvironmentName
from api.schemas.logs import ServiceLogsRead
from core.contracts import LogLine, LogNotice
from core.db import Database
from core.logs import SEARCH_LIMIT
from core.models import Environment, Service
from core.settings import Settings
from domain import logs
from domain.authorization import Permission, service_in_environment
from domain.errors import Invalid

router = APIRouter(prefix="/v1/services", tags=["logs"])

FOLLOW_LIMIT_SECONDS = 3600  # a follower is let go after an hour; it can reconnect

TimeParam = Annotated[
    str | None,
    Query(max_length=40, description="RFC 3339 (2026-12-07T21:00:00Z) or how long ago: 15m, 2h, 7d"),
]


@router.get(
    "/{service_id}/logs",
    operation_id="get_service_logs",
    response_model=ServiceLogsRead,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def get_service_logs(
    service_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    environment: EnvironmentName = "production",
    since: TimeParam = None,
    until: TimeParam = None,
    replica: Annotated[str | None, Query(max_length=128, description="one replica's lines only")] = None,
    deployment: Annotated[
        str | None, Query(max_length=32, description="one deployment's lines only (its id)")
    ] = None,
    search: Annotated[
        str | None,
        Query(
            max_length=SEARCH_LIMIT,
            description=(
                'words and "phrases" the line contains, key:value (or @key:value) on JSON lines '
                "(a.b for nested fields), -term to leave lines out; every term must match"
            ),
        ),
    ] = None,
    tail: Annotated[int, Query(ge=1, le=logs.MAX_LINES)] = 200,
    follow: bool = False,
) -> ServiceLogsRead | StreamingResponse:
    """The service's runtime logs (stdout and stderr of its replicas, removed ones' too, from every node),
    oldest first: the last `tail` lines matching. A node that cannot be read is a notice, not an error.
    With `follow=true`, a `text/event-stream`: the same lines, then each new one as it is written
    (`data:` a line; `event: notice` a node unavailable or lines dropped; a comment as keepalive)."""
    service, env = await service_in_environment(session, actor, Permission.READ, service_id, environment)
    query = logs.log_request(since, until, search, replica, tail, deployment)
    if not follow:
        found = await logs.read_logs(settings, session, service, env, query)
        return ServiceLogsRead(
            service_id=service.id, environment=env.name, lines=found.lines, notices=found.notices
        )
    if until is not None:
        raise Invalid("until", "a follower reads until it stops; leave `until` out with follow=true")
    db: Database = request.app.state.db
    return StreamingResponse(
        _events(settings, db, service, env, query),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    settings: Settings, db: Database, service: Service, environment: Environment, query: logs.LogRequest
) -> AsyncIterator[str]:
    followed = logs.follow_logs(settings, db, service, environment, query)
    deadline = asyncio.get_running_loop().time() + FOLLOW_LIMIT_SECONDS
    try:
        async for item in followed:
            if isinstance(item, LogLine):
                yield f"data: {item.model_dump_json()}\n\n"
            elif isinstance(item, LogNotice):
                yield f"event: notice\ndata: {item.model_dump_json()}\n\n"
            else:
                yield ": keepalive\n\n"
            if asyncio.get_running_loop().time() > deadline:
                yield "event: timeout\ndata: {}\n\n"
                return
    finally:
        await followed.aclose()
