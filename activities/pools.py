"""Activities of node pools: the database side (pools, their guests, join tokens reserved for a node id),
the node operations decommissioning asks of the control plane (cordon, drain, remove: domain/nodes.py,
so they do exactly what an admin's call does), and finding a node's guest on Proxmox for compensation.

Each does one piece of I/O and is idempotent: keyed by the node id, a repeated call finds its own work.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from pydantic import Field
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.proxmox.activities import ProxmoxActivities, pve_failure
from activities.proxmox.contracts import GuestRef
from core import pki
from core.contracts import Contract
from core.db import Database
from core.models import LIVE_REPLICA_STATES, JoinToken, Node, NodePool, PoolNode, Replica, utcnow
from core.node_states import NodeAction
from core.pools import ENDED, PoolNodeState, PoolNodeView, PoolView
from core.proxmox import guests, params
from core.proxmox.errors import PveCallError
from core.proxmox.joindata import JoinData
from core.proxmox.resources import cluster_snapshot
from core.proxmox.spec import GuestKind, NodePoolSpec
from core.settings import Settings
from domain import nodes
from domain.actors import control_plane
from domain.errors import Conflict, DomainError, NotFound
from domain.temporal import TemporalConnection

POOL_LABEL = "pool"
# Who the audit log names for what a pool's workflows do to nodes.
ACTOR = control_plane("node-pools")


class PoolSnapshot(Contract):
    view: PoolView
    spec: NodePoolSpec


class PoolNodeRecord(Contract):
    pool_id: str
    node_id: str
    kind: GuestKind
    workflow_id: str


class PoolNodeUpdate(Contract):
    node_id: str
    state: PoolNodeState | None = None
    pve_node: str | None = None
    vmid: int | None = None
    address: str | None = None
    message: str | None = None
    decommission_undone: bool = Field(
        default=False, description="a decommission failed and was undone: counted for the pool's backoff"
    )


class JoinTokenRequest(Contract):
    node_id: str
    pool_name: str
    labels: dict[str, str] = Field(default_factory=dict)
    ttl_seconds: int = Field(default=3600, ge=60, le=86400)


class EnrolledNode(Contract):
    node_id: str
    name: str
    address: str
    state: str


class NodeDrainState(Contract):
    node_id: str
    live_replicas: int
    node_state: str | None


class PoolActivities:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        temporal: TemporalConnection,
        proxmox: ProxmoxActivities | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.temporal = temporal
        self.proxmox = proxmox or ProxmoxActivities(settings)

    # --- pools ---------------------------------------------------------------------------------------

    @activity.defn
    async def load_pool(self, pool_id: str) -> PoolSnapshot:
        """The pool, its guests and their nodes' states, as core.pools.plan_pool reads them."""
        async with self.db.session() as session:
            pool = await session.get(NodePool, pool_id)
            if pool is None:
                raise ApplicationError(
                    f"node pool {pool_id} does not exist", type="PoolMissing", non_retryable=True
                )
            rows = (
                await session.execute(
                    select(PoolNode, Node)
                    .outerjoin(Node, Node.id == PoolNode.node_id)
                    .where(PoolNode.pool_id == pool_id)
                    .order_by(PoolNode.created_at, PoolNode.node_id)
                )
            ).all()
        nodes = [
            PoolNodeView(
                node_id=pool_node.node_id,
                state=PoolNodeState(pool_node.state),
                created_at=pool_node.created_at,
                ready_at=pool_node.ready_at,
                finished_at=pool_node.finished_at,
                node_state=node.state if node is not None else None,
                node_removed=node is not None and node.removed_at is not None,
                last_heartbeat_at=node.last_heartbeat_at if node is not None else None,
                decommission_failures=pool_node.decommission_failures,
                decommission_failed_at=pool_node.decommission_failed_at,
            )
            for pool_node, node in rows
        ]
        view = PoolView(
            pool_id=pool.id,
            name=pool.name,
            size=pool.size,
            min_size=pool.min_size,
            max_size=pool.max_size,
            deleting=pool.delete_requested_at is not None,
            removed=pool.removed_at is not None,
            nodes=nodes,
        )
        return PoolSnapshot(view=view, spec=NodePoolSpec.model_validate(pool.spec))

    @activity.defn
    async def finish_pool_removal(self, pool_id: str) -> None:
        """A deleted pool with no guest left: removed (its name is free again)."""
        async with self.db.transaction() as session:
            await session.execute(
                update(NodePool)
                .where(NodePool.id == pool_id, NodePool.removed_at.is_(None))
                .values(removed_at=utcnow(), size=0)
            )

    @activity.defn
    async def record_pool_node(self, record: PoolNodeRecord) -> None:
        """The guest-to-be, PROVISIONING, under its reserved node id (kept when it is already there)."""
        async with self.db.transaction() as session:
            if await session.get(PoolNode, record.node_id) is None:
                session.add(
                    PoolNode(
                        node_id=record.node_id,
                        pool_id=record.pool_id,
                        state=PoolNodeState.PROVISIONING.value,
                        kind=record.kind.value,
                        workflow_id=record.workflow_id,
                    )
                )

    @activity.defn
    async def update_pool_node(self, change: PoolNodeUpdate) -> None:
        """Set what is given. An ended guest (FAILED, DESTROYED) only moves to DECOMMISSIONING or
        DESTROYED again (a decommission retried), never back to a provisioning state."""
        async with self.db.transaction() as session:
            row = await session.get(PoolNode, change.node_id, with_for_update=True)
            if row is None:
                raise ApplicationError(
                    f"pool node {change.node_id} does not exist", type="PoolNodeMissing", non_retryable=True
                )
            now = utcnow()
            for name in ("pve_node", "vmid", "address", "message"):
                value = getattr(change, name)
                if value is not None:
                    setattr(row, name, value)
            state = change.state
            if state is not None and not (
                PoolNodeState(row.state) in ENDED
                and state
                not in (PoolNodeState.DECOMMISSIONING, PoolNodeState.DESTROYED, PoolNodeState.FAILED)
            ):
                row.state = state.value
                if state is PoolNodeState.READY and row.ready_at is None:
                    row.ready_at = now
                if state in ENDED:
                    row.finished_at = now
            if change.decommission_undone:
                row.decommission_failures += 1
                row.decommission_failed_at = now
            row.updated_at = now

    # --- join tokens ---------------------------------------------------------------------------------

    @activity.defn
    async def issue_join_token(self, request: JoinTokenRequest) -> JoinData:
        """A single-use join token with which the guest's agent enrolls as `node_id`, and the rest of
        its join data (the API's URL, the CA's fingerprint to pin, the pool's labels). A repeated call
        revokes the unused tokens an earlier attempt made for the node, so only the newest works."""
        fingerprint = self._ca_fingerprint()
        now = utcnow()
        token, row = nodes.new_join_token(now, request.ttl_seconds, reserved_node_id=request.node_id)
        async with self.db.transaction() as session:
            await _revoke_tokens(session, request.node_id, now)
            session.add(row)
        return JoinData(
            join_url=self.settings.public_api_url,
            join_token=token,
            ca_fingerprint=fingerprint,
            labels={**request.labels, POOL_LABEL: request.pool_name},
            node_name=guests.guest_name(request.node_id),
        )

    @activity.defn
    async def revoke_join_tokens(self, node_id: str) -> int:
        """Every unused token reserved for the node expires now; how many there were."""
        async with self.db.transaction() as session:
            return await _revoke_tokens(session, node_id, utcnow())

    def _ca_fingerprint(self) -> str:
        path = pki.ControlPlaneFiles(self.settings.pki_dir).ca_certificate
        try:
            return pki.fingerprint(pki.load_certificate(path.read_bytes()))
        except FileNotFoundError:
            raise ApplicationError(
                f"Dockyard's CA is not at {path} yet (the API creates it when it starts): is "
                "DOCKYARD_STATE_DIR the API's?",
                type="CaMissing",
            ) from None

    # --- nodes ---------------------------------------------------------------------------------------

    @activity.defn
    async def check_node_enrolled(self, node_id: str) -> EnrolledNode:
        """The node once it has enrolled and sent a heartbeat; until then a retryable NodeNotEnrolled."""
        async with self.db.session() as session:
            node = await session.get(Node, node_id)
        if node is None or node.removed_at is not None or node.last_heartbeat_at is None:
            what = "enrolled" if node is None else "sent a heartbeat"
            raise ApplicationError(f"node {node_id} has not {what} yet", type="NodeNotEnrolled")
        return EnrolledNode(node_id=node.id, name=node.name, address=node.address, state=node.state)

    @activity.defn
    async def cordon_node(self, node_id: str) -> str:
        async with self.db.session() as session:
            return await _node_action(
                node_id, "cordon", nodes.change_state(session, node_id, NodeAction.CORDON, ACTOR)
            )

    @activity.defn
    async def uncordon_node(self, node_id: str) -> str:
        """Undo cordon and drain: the node takes replicas again (a DOWN node does once it is back)."""
        async with self.db.session() as session:
            return await _node_action(
                node_id, "uncordon", nodes.change_state(session, node_id, NodeAction.UNCORDON, ACTOR)
            )

    @activity.defn
    async def drain_node(self, node_id: str) -> str:
        """The node drained, once: a node already DRAINING was drained by an earlier attempt."""
        async with self.db.session() as session:
            node = await session.get(Node, node_id)
            if node is None or node.removed_at is not None or node.state == "DRAINING":
                return "skipped" if node is None or node.removed_at is not None else "DRAINING"
            return await _node_action(
                node_id, "drain", nodes.drain(session, self.settings, self.temporal, node_id, ACTOR)
            )

    @activity.defn
    async def remove_node(self, node_id: str) -> str:
        """The node forgotten, its certificate revoked."""
        async with self.db.session() as session:
            return await _node_action(node_id, "removal", nodes.remove(session, node_id, ACTOR))

    @activity.defn
    async def check_node_drained(self, node_id: str) -> NodeDrainState:
        """No live replica left on the node (its deployments were redeployed elsewhere), or the node is
        DOWN (what it ran is lost already); until then a retryable NodeNotDrained."""
        async with self.db.session() as session:
            node = await session.get(Node, node_id)
            live = await session.scalar(
                select(func.count())
                .select_from(Replica)
                .where(Replica.node == node_id, Replica.state.in_(LIVE_REPLICA_STATES))
            )
        state = node.state if node is not None and node.removed_at is None else None
        if live and state not in (None, "DOWN"):
            raise ApplicationError(
                f"node {node_id} still runs {live} replica(s) of other deployments", type="NodeNotDrained"
            )
        return NodeDrainState(node_id=node_id, live_replicas=live or 0, node_state=state)

    # --- Proxmox -------------------------------------------------------------------------------------

    @activity.defn
    async def locate_guest(self, node_id: str) -> GuestRef | None:
        """The guest made for the node (by its tag or name), wherever it is now; None when there is none."""
        try:
            rows = await self.proxmox.pve.call(
                params.cluster_resources(), action="reading the cluster's resources"
            )
        except PveCallError as exc:
            raise pve_failure(exc.error) from None
        snapshot = cluster_snapshot(rows if isinstance(rows, list) else [])
        try:
            found = guests.find_guest(snapshot, node_id)
        except guests.GuestLookupError as exc:
            raise ApplicationError(str(exc), type="PveGuestsConflict", non_retryable=True) from None
        if found is None:
            return None
        return GuestRef(kind=found.kind, pve_node=found.node, vmid=found.vmid)


async def _revoke_tokens(session: AsyncSession, node_id: str, now: datetime) -> int:
    revoked = await session.execute(
        update(JoinToken)
        .where(JoinToken.reserved_node_id == node_id, JoinToken.used_at.is_(None), JoinToken.expires_at > now)
        .values(expires_at=now)
    )
    return int(revoked.rowcount or 0)  # type: ignore[attr-defined]


async def _node_action(node_id: str, what: str, operation: Awaitable[Node]) -> str:
    """The node's state after the operation; "skipped: ..." when there was nothing to do (the node
    never enrolled, or was removed already)."""
    try:
        node = await operation
    except (NotFound, Conflict) as exc:
        return f"skipped: {exc.detail}"
    except DomainError as exc:  # Temporal unavailable for a drain's releases: a later attempt
        raise ApplicationError(f"{what} of node {node_id}: {exc.detail}", type="NodeActionFailed") from None
    return node.state
