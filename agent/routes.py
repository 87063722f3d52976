"""The agent's /v1 API: replicas and the node. Every route requires the app's Authenticator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from agent.auth import Authenticator
from agent.errors import AgentFailure
from agent.logs import LogQuery, ServiceLogs, TooManyFollowers
from agent.replicas import Replicas
from core.contracts import (
    REPLICA_ID_PATTERN,
    AgentError,
    Heartbeat,
    NodeInfo,
    ReplicaLog,
    ReplicaSpec,
    ReplicaStatus,
)
from core.logs import SEARCH_LIMIT, InvalidLogQuery, parse_search


def authenticated(request: Request) -> str:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.authenticate(request)


def get_replicas(request: Request) -> Replicas:
    return request.app.state.replicas


ReplicasDep = Annotated[Replicas, Depends(get_replicas)]
ReplicaId = Annotated[str, Path(pattern=REPLICA_ID_PATTERN)]

NDJSON = "application/x-ndjson"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
LOG_LINES_LIMIT = 10_000  # lines of one answer
LOG_TAIL_LIMIT = 200  # lines: a log tail explains a failure; the whole log is Docker's to keep

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": AgentError} for code in (401, 403, 404, 409, 422, 500, 502, 503)
}

router = APIRouter(prefix="/v1", tags=["agent"], dependencies=[Depends(authenticated)], responses=ERRORS)


@router.put("/replicas/{replica_id}", operation_id="ensure_replica")
async def ensure_replica(replica_id: ReplicaId, spec: ReplicaSpec, replicas: ReplicasDep) -> ReplicaStatus:
    """Ensure the replica exists and runs with this spec: pull, create, start as needed."""
    if spec.replica_id != replica_id:
        raise AgentFailure(
            422,
            "validate",
            f"body.replica_id: {spec.replica_id!r} differs from the path's {replica_id!r}",
            replica_id,
        )
    return await replicas.ensure(spec)


@router.get("/replicas/{replica_id}", operation_id="get_replica")
async def get_replica(replica_id: ReplicaId, replicas: ReplicasDep) -> ReplicaStatus:
    """The replica's state, address and health (probed now)."""
    return await replicas.status(replica_id)


@router.post("/replicas/{replica_id}/start", operation_id="start_replica")
async def start_replica(replica_id: ReplicaId, replicas: ReplicasDep) -> ReplicaStatus:
    """Start the replica's stopped container again, as it was created (not probed)."""
    return await replicas.start(replica_id)


@router.get("/replicas/{replica_id}/logs", operation_id="get_replica_logs")
async def get_replica_logs(
    replica_id: ReplicaId,
    replicas: ReplicasDep,
    tail: Annotated[int, Query(ge=1, le=LOG_TAIL_LIMIT)] = 20,
) -> ReplicaLog:
    """The last `tail` lines the replica wrote (stdout and stderr), each cut to 500 characters."""
    return await replicas.logs(replica_id, tail)


@router.get(
    "/logs",
    operation_id="get_logs",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def get_logs(
    request: Request,
    service_id: Annotated[str, Query(pattern=ID_PATTERN)],
    environment_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    replica_id: Annotated[str | None, Query(pattern=REPLICA_ID_PATTERN)] = None,
    deployment_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    search: Annotated[str | None, Query(max_length=SEARCH_LIMIT)] = None,
    tail: Annotated[int, Query(ge=1, le=LOG_LINES_LIMIT)] = 200,
    follow: bool = False,
) -> StreamingResponse:
    """A service's runtime logs on this node as NDJSON (`LogLine`s, oldest first; `LogNotice`s for
    dropped lines): the last `tail` lines matching the query, from its containers and the kept logs of
    removed ones. With `follow`, then every new line until the reader goes (a blank line now and then)."""
    try:
        parsed = parse_search(search)
    except InvalidLogQuery as exc:
        raise AgentFailure(422, "validate", f"search: {exc}") from None
    query = LogQuery(
        service_id, environment_id, replica_id, _aware(since), _aware(until), parsed, tail, deployment_id
    )
    logs: ServiceLogs = request.app.state.logs
    if not follow:
        lines = await logs.history(query)
        body = "".join(line.model_dump_json() + "\n" for line in lines)
        return StreamingResponse(iter([body]), media_type=NDJSON)
    try:
        logs.check_room()
    except TooManyFollowers as exc:
        raise AgentFailure(503, "follow", str(exc)) from None
    return StreamingResponse(_followed(logs, query), media_type=NDJSON)


async def _followed(logs: ServiceLogs, query: LogQuery) -> AsyncIterator[str]:
    followed = logs.follow(query)
    try:
        async for item in followed:
            yield "\n" if item is None else item.model_dump_json() + "\n"
    finally:
        await followed.aclose()


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@router.get("/replicas", operation_id="list_replicas")
async def list_replicas(
    replicas: ReplicasDep,
    service_id: str | None = None,
    environment_id: str | None = None,
    deployment_id: str | None = None,
) -> list[ReplicaStatus]:
    """Every replica on this node matching the ids given; not probed (`healthy` is False)."""
    return await replicas.list(service_id, environment_id, deployment_id)


@router.delete(
    "/replicas/{replica_id}", operation_id="remove_replica", status_code=status.HTTP_204_NO_CONTENT
)
async def remove_replica(
    replica_id: ReplicaId,
    replicas: ReplicasDep,
    grace_seconds: Annotated[int | None, Query(ge=0, le=3600)] = None,
) -> Response:
    """Stop (SIGTERM, SIGKILL after the grace) and remove the replica; 204 also when it never existed."""
    await replicas.remove(replica_id, grace_seconds)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/heartbeat", operation_id="get_heartbeat")
async def get_heartbeat(replicas: ReplicasDep) -> Heartbeat:
    """This node's capacity, usage, labels and every container it owns (not probed)."""
    return await replicas.heartbeat()


@router.get("/node", operation_id="get_node")
async def get_node(replicas: ReplicasDep) -> NodeInfo:
    return await replicas.node()
