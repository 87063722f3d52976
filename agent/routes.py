"""The agent's /v1 API: replicas and the node. Every route requires the app's Authenticator."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from agent.auth import Authenticator
from agent.errors import AgentFailure
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


def authenticated(request: Request) -> str:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.authenticate(request)


def get_replicas(request: Request) -> Replicas:
    return request.app.state.replicas


ReplicasDep = Annotated[Replicas, Depends(get_replicas)]
ReplicaId = Annotated[str, Path(pattern=REPLICA_ID_PATTERN)]

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
