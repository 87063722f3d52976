"""Node pools on Proxmox VE: create, list, show (with their guests), resize, delete, and decommission one
guest. The API records what is wanted and wakes the pool's NodePoolWorkflow (`pool/<id>`, signal-with-start),
which provisions and decommissions guests until the pool matches (workflows/pools.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from api.deps import AdminActor, SessionDep, SettingsDep, TemporalDep
from api.schemas.common import ErrorBody
from api.schemas.pools import NodePoolCreate, NodePoolRead, NodePoolUpdate, PoolNodeRead
from core.models import Node, NodePool, PoolNode, new_id, utcnow
from core.naming import pool_workflow_id
from core.pools import PoolNodeState, PoolPolicy, check_sizes
from core.proxmox.spec import NodePoolSpec
from core.settings import Settings
from domain.audit import audit
from domain.errors import Conflict, NotFound, Unavailable
from domain.temporal import TemporalConnection
from workflows.pools import RECONCILE_SIGNAL, NodePoolInput, NodePoolWorkflow

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
    if not settings.proxmox_hosts:
        raise Conflict(
            "Proxmox is not configured: set DOCKYARD_PROXMOX_HOSTS and DOCKYARD_PROXMOX_TOKEN_ID and "
            "_TOKEN_SECRET (or _USER and _PASSWORD) for the API and the workers (infra/proxmox/README.md)"
        )
    spec = NodePoolSpec.model_validate(body.model_dump(exclude={"size"}))
    size = spec.min_size if body.size is None else body.size
    if problem := check_sizes(spec.min_size, spec.max_size, size):
        raise _invalid(problem)
    pool_id = new_id("pool")
    pool = NodePool(
        id=pool_id,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        min_size=spec.min_size,
        max_size=spec.max_size,
        size=size,
        workflow_id=pool_workflow_id(pool_id),
    )
    session.add(pool)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"name: a node pool named {spec.name!r} exists already") from None
    audit(session, actor, "node_pool.create", pool_id, name=spec.name, size=size, spec=pool.spec)
    await session.commit()
    try:
        await _wake(temporal, settings, pool_id)
    except Unavailable as refused:
        # Nothing provisions a pool without its workflow: take the pool back, so the call can be retried.
        await session.delete(pool)
        audit(session, actor, "node_pool.create_undone", pool_id, reason=refused.detail)
        await session.commit()
        raise Unavailable(f"{refused.detail}: the pool was not created; retry the call") from None
    return await _read(session, pool)


@router.get("", operation_id="list_node_pools")
async def list_node_pools(
    session: SessionDep, actor: AdminActor, include_removed: bool = False, include_destroyed: bool = False
) -> list[NodePoolRead]:
    query = select(NodePool).order_by(NodePool.created_at, NodePool.id)
    if not include_removed:
        query = query.where(NodePool.removed_at.is_(None))
    return [await _read(session, pool, include_destroyed) for pool in await session.scalars(query)]


@router.get("/{pool_id}", operation_id="get_node_pool", responses=ERRORS)
async def get_node_pool(
    pool_id: str, session: SessionDep, actor: AdminActor, include_destroyed: bool = False
) -> NodePoolRead:
    """The pool and its guests: node id, state, PVE node, vmid, address, and why one FAILED."""
    return await _read(session, await _pool(session, pool_id), include_destroyed)


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
    pool = await _current(session, pool_id)
    min_size = pool.min_size if body.min_size is None else body.min_size
    max_size = pool.max_size if body.max_size is None else body.max_size
    size = pool.size if body.size is None else body.size
    if body.size is None:  # new bounds carry the size along with them
        size = min(max(size, min_size), max_size)
    if problem := check_sizes(min_size, max_size, size):
        raise _invalid(problem)
    previous = {"size": pool.size, "min_size": pool.min_size, "max_size": pool.max_size}
    pool.min_size, pool.max_size, pool.size = min_size, max_size, size
    pool.spec = {**pool.spec, "min_size": min_size, "max_size": max_size}
    pool.updated_at = utcnow()
    audit(
        session,
        actor,
        "node_pool.resize",
        pool_id,
        previous=previous,
        size=size,
        min_size=min_size,
        max_size=max_size,
    )
    await session.commit()
    await _wake(temporal, settings, pool_id)
    return await _read(session, pool)


@router.delete(
    "/{pool_id}", status_code=status.HTTP_202_ACCEPTED, operation_id="delete_node_pool", responses=ERRORS
)
async def delete_node_pool(
    pool_id: str, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, actor: AdminActor
) -> NodePoolRead:
    """Scale the pool to 0 (each guest drained, stopped, destroyed), then remove it."""
    pool = await _pool(session, pool_id)
    if pool.removed_at is None and pool.delete_requested_at is None:
        pool.delete_requested_at = utcnow()
        pool.size, pool.min_size = 0, 0
        pool.spec = {**pool.spec, "min_size": 0}
        audit(session, actor, "node_pool.delete", pool_id, name=pool.name)
        await session.commit()
    if pool.removed_at is None:
        await _wake(temporal, settings, pool_id)
    return await _read(session, pool)


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
    pool = await _current(session, pool_id)
    pool_node = await session.get(PoolNode, node_id)
    if pool_node is None or pool_node.pool_id != pool_id:
        raise NotFound("pool node", node_id)
    state = PoolNodeState(pool_node.state)
    if state is PoolNodeState.DECOMMISSIONING:  # asked before: wake the pool again (a retry after a 503)
        await _wake(temporal, settings, pool_id)
        return await _read(session, pool)
    if state is not PoolNodeState.READY and not (
        state is PoolNodeState.FAILED and pool_node.vmid is not None
    ):
        raise Conflict(
            f"state: pool node {node_id} is {state}; only a READY guest (or a FAILED one that has a vmid) "
            "can be decommissioned"
            + (
                "; wait until it is READY"
                if state in (PoolNodeState.PROVISIONING, PoolNodeState.ENROLLING)
                else ""
            )
        )
    if not replace and state is PoolNodeState.READY:
        # Conditional: two decommissions at once cannot take the pool below its min_size together.
        shrunk = await session.execute(
            update(NodePool)
            .where(NodePool.id == pool_id, NodePool.size - 1 >= NodePool.min_size)
            .values(size=NodePool.size - 1)
        )
        if not shrunk.rowcount:  # type: ignore[attr-defined]
            await session.rollback()
            await session.refresh(pool)
            raise Conflict(
                f"size: the pool would have {pool.size - 1} guests, below its min_size {pool.min_size}: "
                "lower min_size first (PATCH), or pass replace=true to put a new guest in its place"
            )
    marked = await session.execute(
        update(PoolNode)
        .where(PoolNode.node_id == node_id, PoolNode.state == state.value)
        .values(state=PoolNodeState.DECOMMISSIONING.value, updated_at=utcnow())
    )
    if not marked.rowcount:  # type: ignore[attr-defined]
        await session.rollback()
        raise Conflict(f"state: pool node {node_id} changed meanwhile; look again and retry")
    await session.refresh(pool)
    audit(session, actor, "node_pool.decommission", node_id, pool_id=pool_id, replace=replace, size=pool.size)
    await session.commit()
    await _wake(temporal, settings, pool_id)
    return await _read(session, pool)


# --- helpers ---------------------------------------------------------------------------------------------


async def _pool(session: AsyncSession, pool_id: str) -> NodePool:
    pool = await session.get(NodePool, pool_id)
    if pool is None:
        raise NotFound("node pool", pool_id)
    return pool


async def _current(session: AsyncSession, pool_id: str) -> NodePool:
    pool = await _pool(session, pool_id)
    if pool.removed_at is not None or pool.delete_requested_at is not None:
        raise Conflict(f"node pool {pool_id} is being deleted or was removed")
    return pool


def _invalid(problem: str) -> RequestValidationError:
    """A 422 naming the field, like the body's own validation errors."""
    field, _, reason = problem.partition(": ")
    return RequestValidationError([{"loc": ("body", field), "msg": reason, "type": "value_error"}])


async def _read(session: AsyncSession, pool: NodePool, include_destroyed: bool = True) -> NodePoolRead:
    query = (
        select(PoolNode, Node.state)
        .outerjoin(Node, Node.id == PoolNode.node_id)
        .where(PoolNode.pool_id == pool.id)
        .order_by(PoolNode.created_at, PoolNode.node_id)
    )
    if not include_destroyed:
        query = query.where(PoolNode.state != PoolNodeState.DESTROYED.value)
    nodes = [
        PoolNodeRead.model_validate(pool_node).model_copy(update={"node_state": node_state})
        for pool_node, node_state in (await session.execute(query)).all()
    ]
    read = NodePoolRead.model_validate(
        {
            **{
                column: getattr(pool, column) for column in NodePoolRead.model_fields if hasattr(pool, column)
            },
            "kind": pool.spec.get("kind", ""),
            "template_vmid": pool.spec.get("template_vmid", 0),
            "nodes": nodes,
        }
    )
    return read


def pool_input(settings: Settings, pool_id: str) -> NodePoolInput:
    return NodePoolInput(
        pool_id=pool_id,
        policy=PoolPolicy(replace_down_after_seconds=settings.pool_replace_down_after_seconds),
        reconcile_interval_seconds=settings.pool_reconcile_interval_seconds,
        enroll_timeout_seconds=settings.pool_enroll_timeout_seconds,
    )


async def _wake(temporal: TemporalConnection, settings: Settings, pool_id: str) -> None:
    """Signal-with-start of the pool's workflow: it looks at the pool again now."""
    client = await temporal.get()
    try:
        await client.start_workflow(
            NodePoolWorkflow.run,
            pool_input(settings, pool_id),
            id=pool_workflow_id(pool_id),
            task_queue=settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=RECONCILE_SIGNAL,
        )
    except RPCError as exc:
        raise Unavailable(
            f"recorded, but Temporal refused to start the pool's workflow: {exc.message}; retry the call"
        ) from None
