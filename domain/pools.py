"""Node pools on Proxmox VE: create, resize, delete, and decommission one guest.

Each operation records what is wanted and wakes the pool's NodePoolWorkflow (`pool/<id>`,
signal-with-start), which provisions and decommissions guests until the pool matches
(workflows/pools.py). Nothing here asks Proxmox: a pool's workflow does, through its activities.
The API's routes (api/routes/pools.py, admin only) call these.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from core.models import Node, NodePool, PoolNode, new_id, utcnow
from core.naming import pool_workflow_id
from core.pools import PoolNodeState, PoolPolicy, check_sizes
from core.proxmox.spec import NodePoolSpec
from core.settings import Settings
from domain.actors import Actor
from domain.audit import audit
from domain.errors import Conflict, Invalid, NotFound, Unavailable
from domain.temporal import TemporalConnection
from workflows.pools import RECONCILE_SIGNAL, NodePoolInput, NodePoolWorkflow


async def get_pool(session: AsyncSession, pool_id: str) -> NodePool:
    pool = await session.get(NodePool, pool_id)
    if pool is None:
        raise NotFound("node pool", pool_id)
    return pool


async def list_pools(session: AsyncSession, *, include_removed: bool) -> list[NodePool]:
    query = select(NodePool).order_by(NodePool.created_at, NodePool.id)
    if not include_removed:
        query = query.where(NodePool.removed_at.is_(None))
    return list(await session.scalars(query))


async def pool_nodes(
    session: AsyncSession, pool_id: str, *, include_destroyed: bool
) -> list[tuple[PoolNode, str | None]]:
    """The pool's guests, oldest first, each with its enrolled node's state (None before it enrolled)."""
    query = (
        select(PoolNode, Node.state)
        .outerjoin(Node, Node.id == PoolNode.node_id)
        .where(PoolNode.pool_id == pool_id)
        .order_by(PoolNode.created_at, PoolNode.node_id)
    )
    if not include_destroyed:
        query = query.where(PoolNode.state != PoolNodeState.DESTROYED.value)
    return [(pool_node, node_state) for pool_node, node_state in (await session.execute(query)).all()]


async def create(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    spec: NodePoolSpec,
    size: int | None,
    actor: Actor,
) -> NodePool:
    """A pool of guests cloned from a Proxmox template (`size` of them, default its min_size), committed,
    and its workflow started to provision them."""
    if not settings.proxmox_hosts:
        raise Conflict(
            "Proxmox is not configured: set DOCKYARD_PROXMOX_HOSTS and DOCKYARD_PROXMOX_TOKEN_ID and "
            "_TOKEN_SECRET (or _USER and _PASSWORD) for the API and the workers (infra/proxmox/README.md)"
        )
    size = spec.min_size if size is None else size
    _check_sizes(spec.min_size, spec.max_size, size)
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
        await wake(temporal, settings, pool_id)
    except Unavailable as refused:
        # Nothing provisions a pool without its workflow: take the pool back, so the call can be retried.
        await session.delete(pool)
        audit(session, actor, "node_pool.create_undone", pool_id, reason=refused.detail)
        await session.commit()
        raise Unavailable(f"{refused.detail}: the pool was not created; retry the call") from None
    return pool


async def resize(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    pool_id: str,
    actor: Actor,
    *,
    size: int | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
) -> NodePool:
    """New `size` (guests wanted now), `min_size`, `max_size`; None keeps the current one. The pool reacts
    at once."""
    pool = await _current(session, pool_id)
    min_size = pool.min_size if min_size is None else min_size
    max_size = pool.max_size if max_size is None else max_size
    if size is None:  # new bounds carry the size along with them
        size = min(max(pool.size, min_size), max_size)
    _check_sizes(min_size, max_size, size)
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
    await wake(temporal, settings, pool_id)
    return pool


async def request_deletion(
    session: AsyncSession, settings: Settings, temporal: TemporalConnection, pool_id: str, actor: Actor
) -> NodePool:
    """Scale the pool to 0 (each guest drained, stopped, destroyed); its workflow then removes it.
    Asking again wakes the workflow again (a retry after a 503), until the pool is removed."""
    pool = await get_pool(session, pool_id)
    if pool.removed_at is None and pool.delete_requested_at is None:
        pool.delete_requested_at = utcnow()
        pool.size, pool.min_size = 0, 0
        pool.spec = {**pool.spec, "min_size": 0}
        audit(session, actor, "node_pool.delete", pool_id, name=pool.name)
        await session.commit()
    if pool.removed_at is None:
        await wake(temporal, settings, pool_id)
    return pool


async def decommission(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    pool_id: str,
    node_id: str,
    actor: Actor,
    *,
    replace: bool = False,
) -> NodePool:
    """Mark one guest DECOMMISSIONING: the pool's workflow drains its node and destroys it. The pool
    shrinks by one, unless `replace`: then a new guest takes its place."""
    pool = await _current(session, pool_id)
    pool_node = await session.get(PoolNode, node_id)
    if pool_node is None or pool_node.pool_id != pool_id:
        raise NotFound("pool node", node_id)
    state = PoolNodeState(pool_node.state)
    if state is PoolNodeState.DECOMMISSIONING:  # asked before: wake the pool again (a retry after a 503)
        await wake(temporal, settings, pool_id)
        return pool
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
    # Conditional on the state read above: a guest whose state changed since (its workflow moved it on,
    # or another call marked it first) is refused, not marked.
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
    await wake(temporal, settings, pool_id)
    return pool


def pool_input(settings: Settings, pool_id: str) -> NodePoolInput:
    return NodePoolInput(
        pool_id=pool_id,
        policy=PoolPolicy(replace_down_after_seconds=settings.pool_replace_down_after_seconds),
        reconcile_interval_seconds=settings.pool_reconcile_interval_seconds,
        enroll_timeout_seconds=settings.pool_enroll_timeout_seconds,
    )


async def wake(temporal: TemporalConnection, settings: Settings, pool_id: str) -> None:
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


async def _current(session: AsyncSession, pool_id: str) -> NodePool:
    """The pool, unless it is being deleted or was removed: then nothing about it changes any more."""
    pool = await get_pool(session, pool_id)
    if pool.removed_at is not None or pool.delete_requested_at is not None:
        raise Conflict(f"node pool {pool_id} is being deleted or was removed")
    return pool


def _check_sizes(min_size: int, max_size: int, size: int) -> None:
    """Invalid names the field (core.pools.check_sizes says which), like the body's own validation errors."""
    if problem := check_sizes(min_size, max_size, size):
        field, _, reason = problem.partition(": ")
        raise Invalid(field, reason)
