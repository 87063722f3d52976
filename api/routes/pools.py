"""Node pools on Proxmox VE: create, list, show (with their guests), resize, delete, and decommission one
guest (the operations: domain/pools.py). The API records what is wanted and wakes the pool's
NodePoolWorkflow (`pool/<id>`, signal-with-start), which provisions and decommissions guests until the
pool matches (workflows/pools.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import AdminActor, SessionDep, SettingsDep, TemporalDep
from api.schemas.common import ErrorBody
from api.schemas.pools import NodePoolCreate, NodePoolRead, NodePoolUpdate, PoolNodeRead
from core.models import NodePool
from core.proxmox.spec import NodePoolSpec
from domain import pools

router = APIRouter(prefix="/v1/node-pools", tags=["node-pools"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_node_pool", responses=ERRORS)
async def create_node_pool(
    body: NodePoolCreate,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    actor: AdminActor,
) -> NodePoolRead:
    """A pool of guests cloned from a Proxmox template; its workflow starts provisioning `size` of them."""
    try:
        spec = NodePoolSpec.model_validate(body.model_dump(exclude={"size"}))
    except ValidationError as exc:  # what only the whole spec can tell (min_size above the default max_size)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    return await _read(session, await pools.create(session, settings, temporal, spec, body.size, actor))


@router.get("", operation_id="list_node_pools")
async def list_node_pools(
    session: SessionDep, actor: AdminActor, include_removed: bool = False, include_destroyed: bool = False
) -> list[NodePoolRead]:
    return [
        await _read(session, pool, include_destroyed)
        for pool in await pools.list_pools(session, include_removed=include_removed)
    ]


@router.get("/{pool_id}", operation_id="get_node_pool", responses=ERRORS)
async def get_node_pool(
    pool_id: str, session: SessionDep, actor: AdminActor, include_destroyed: bool = False
) -> NodePoolRead:
    """The pool and its guests: node id, state, PVE node, vmid, address, and why one FAILED."""
    return await _read(session, await pools.get_pool(session, pool_id), include_destroyed)


@router.patch("/{pool_id}", operation_id="update_node_pool", responses=ERRORS)
async def update_node_pool(
    pool_id: str,
    body: NodePoolUpdate,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    actor: AdminActor,
) -> NodePoolRead:
    """Resize: `size` (guests wanted now), `min_size`, `max_size`. The pool reacts at once."""
    pool = await pools.resize(
        session,
        settings,
        temporal,
        pool_id,
        actor,
        size=body.size,
        min_size=body.min_size,
        max_size=body.max_size,
    )
    return await _read(session, pool)


@router.delete(
    "/{pool_id}", status_code=status.HTTP_202_ACCEPTED, operation_id="delete_node_pool", responses=ERRORS
)
async def delete_node_pool(
    pool_id: str, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, actor: AdminActor
) -> NodePoolRead:
    """Scale the pool to 0 (each guest drained, stopped, destroyed), then remove it."""
    return await _read(session, await pools.request_deletion(session, settings, temporal, pool_id, actor))


@router.post(
    "/{pool_id}/nodes/{node_id}/decommission",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="decommission_pool_node",
    responses=ERRORS,
)
async def decommission_pool_node(
    pool_id: str,
    node_id: str,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    actor: AdminActor,
    replace: bool = False,
) -> NodePoolRead:
    """Drain one guest's node and destroy the guest. The pool shrinks by one, unless `replace=true`: then a
    new guest takes its place."""
    pool = await pools.decommission(session, settings, temporal, pool_id, node_id, actor, replace=replace)
    return await _read(session, pool)


async def _read(session: AsyncSession, pool: NodePool, include_destroyed: bool = True) -> NodePoolRead:
    nodes = [
        PoolNodeRead.model_validate(pool_node).model_copy(update={"node_state": node_state})
        for pool_node, node_state in await pools.pool_nodes(
            session, pool.id, include_destroyed=include_destroyed
        )
    ]
    return NodePoolRead.model_validate(
        {
            **{
                column: getattr(pool, column) for column in NodePoolRead.model_fields if hasattr(pool, column)
            },
            "kind": pool.spec.get("kind", ""),
            "template_vmid": pool.spec.get("template_vmid", 0),
            "nodes": nodes,
        }
    )
