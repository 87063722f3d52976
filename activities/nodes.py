"""Activities over the fleet of nodes: where a deployment's replicas go (the pure scheduler, fed
from the database), and which nodes a sweep must visit."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import NodeRef, NodeReplicas, Placement, PlacementRequest
from core.db import Database
from core.models import LIVE_REPLICA_STATES, Deployment, Node, Replica
from core.scheduler import (
    ExistingReplica,
    NodeInfo,
    NodeState,
    ReplicaRequest,
    Resources,
    Unplaced,
    schedule,
)


class NodeActivities:
    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn
    async def place_replicas(self, request: PlacementRequest) -> Placement:
        """Place the deployment's replicas on enrolled nodes, spread across them (each service's
        replicas relative to those already running). With no node enrolled, everything runs on the
        local agent. Raises a non-retryable Unschedulable naming each node's reason."""
        async with self.db.session() as session:
            nodes = list(await session.scalars(select(Node).where(Node.removed_at.is_(None))))
            if not nodes:
                return Placement(groups=[NodeReplicas(node=NodeRef(), replica_ids=request.replica_ids)])
            running = await session.execute(
                select(Replica.node)
                .join(Deployment, Deployment.id == Replica.deployment_id)
                .where(
                    Deployment.service_id == request.service_id,
                    Deployment.environment_id == request.environment_id,
                    Deployment.id != request.deployment_id,
                    Replica.state.in_(LIVE_REPLICA_STATES),
                )
            )
            spread_key = f"{request.service_id}/{request.environment_id}"
            existing = [ExistingReplica(node_id=node_id, spread_key=spread_key) for (node_id,) in running]
        result = schedule(
            [_node_info(node) for node in nodes],
            [
                ReplicaRequest(
                    replica_id=replica_id,
                    service_id=request.service_id,
                    resources=Resources(cpu_millis=request.cpu_millis, memory_mb=request.memory_mb),
                    constraints=request.constraints,
                    spread_key=spread_key,
                )
                for replica_id in request.replica_ids
            ],
            existing=existing,
        )
        if result.unplaced:
            raise ApplicationError(
                _unplaceable(result.unplaced[0], nodes), type="Unschedulable", non_retryable=True
            )
        by_node: dict[str, list[str]] = defaultdict(list)
        for placement in result.placements:
            by_node[placement.node_id].append(placement.replica_id)
        addresses = {node.id: node.address for node in nodes}
        return Placement(
            groups=[
                NodeReplicas(node=NodeRef(node_id=node_id, address=addresses[node_id]), replica_ids=ids)
                for node_id, ids in sorted(by_node.items())
            ]
        )


def _node_info(node: Node) -> NodeInfo:
    capacity = node.capacity or {}
    return NodeInfo(
        node_id=node.id,
        state=NodeState(node.state),
        # A node that reported no capacity is not limited by it (requests are not enforced yet).
        capacity=Resources(
            cpu_millis=int(capacity.get("cpu_millis") or 1_000_000_000),
            memory_mb=int(capacity.get("memory_mb") or 1_000_000_000),
        ),
        labels={str(k): str(v) for k, v in (node.labels or {}).items()},
    )


def _unplaceable(unplaced: Unplaced, nodes: list[Node]) -> str:
    names = {node.id: node.name for node in nodes}
    reasons = "; ".join(
        f"{names.get(node_id, node_id)}: {why}" for node_id, why in sorted(unplaced.reasons.items())
    )
    return f"replica {unplaced.replica_id} fits on no node ({reasons})"
