"""Activities over the fleet of nodes: where a deployment's replicas go (the pure scheduler, fed
from the database), and which nodes a sweep must visit."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

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
    Strategy,
    Unplaced,
    schedule,
)


class NodeActivities:
    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn
    async def place_replicas(self, request: PlacementRequest) -> Placement:
        """Place the deployment's replicas on enrolled nodes with the service's strategy (spread by
        default: each service's replicas relative to those already running), its constraints and the
        resources each replica reserves. With no node enrolled, everything runs on the local agent.
        Raises a non-retryable Unschedulable naming each node's reason."""
        async with self.db.session() as session:
            nodes = list(await session.scalars(select(Node).where(Node.removed_at.is_(None))))
            if not nodes:
                return Placement(groups=[NodeReplicas(node=NodeRef(), replica_ids=request.replica_ids)])
            live = await session.execute(
                select(
                    Replica.node,
                    Deployment.id,
                    Deployment.service_id,
                    Deployment.environment_id,
                    Deployment.config,
                )
                .join(Deployment, Deployment.id == Replica.deployment_id)
                .where(Replica.state.in_(LIVE_REPLICA_STATES), Deployment.id != request.deployment_id)
            )
            spread_key = f"{request.service_id}/{request.environment_id}"
            existing: list[ExistingReplica] = []
            allocated: dict[str, Resources] = defaultdict(lambda: Resources(cpu_millis=0, memory_mb=0))
            for node_id, _, service_id, environment_id, config in live:
                if (service_id, environment_id) == (request.service_id, request.environment_id):
                    existing.append(ExistingReplica(node_id=node_id, spread_key=spread_key))
                allocated[node_id] = _plus(allocated[node_id], reserved(config or {}))
        wanted = request.placement
        result = schedule(
            [_node_info(node, allocated[node.id]) for node in nodes],
            [
                ReplicaRequest(
                    replica_id=replica_id,
                    service_id=request.service_id,
                    resources=Resources(cpu_millis=wanted.cpu_millis or 0, memory_mb=wanted.memory_mb or 0),
                    constraints=wanted.constraints,
                    spread_key=spread_key,
                )
                for replica_id in request.replica_ids
            ],
            strategy=Strategy(wanted.strategy),
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


def reserved(config: dict[str, Any]) -> Resources:
    """What one replica of a deployment reserves on its node, from its configuration snapshot
    (DeploymentConfig, stored as JSON; only the reservations are read)."""
    return Resources(
        cpu_millis=int(config.get("cpu_millis") or 0), memory_mb=int(config.get("memory_mb") or 0)
    )


def _plus(a: Resources, b: Resources) -> Resources:
    return Resources(cpu_millis=a.cpu_millis + b.cpu_millis, memory_mb=a.memory_mb + b.memory_mb)


def _node_info(node: Node, allocated: Resources) -> NodeInfo:
    capacity = node.capacity or {}
    return NodeInfo(
        node_id=node.id,
        state=NodeState(node.state),
        # A node that has not reported its capacity yet is not limited by it.
        capacity=Resources(
            cpu_millis=int(capacity.get("cpu_millis") or 1_000_000_000),
            memory_mb=int(capacity.get("memory_mb") or 1_000_000_000),
        ),
        allocated=allocated,
        labels={str(k): str(v) for k, v in (node.labels or {}).items()},
    )


def _unplaceable(unplaced: Unplaced, nodes: list[Node]) -> str:
    names = {node.id: node.name for node in nodes}
    reasons = "; ".join(
        f"{names.get(node_id, node_id)}: {why}" for node_id, why in sorted(unplaced.reasons.items())
    )
    return f"replica {unplaced.replica_id} fits on no node ({reasons})"
