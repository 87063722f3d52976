"""Questions about the fleet that several parts of the control plane ask the database (statements only)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, Update, select, update

from core.contracts import DeploymentStatus, ReplicaState
from core.models import LIVE_REPLICA_STATES, Deployment, Replica

# A replica its node does not report although it was recorded this long ago is missing (its container
# removed behind Dockyard's back): longer than a heartbeat or a report takes to reach the database, so
# one composed before the replica was recorded never counts.
MISSING_AFTER_SECONDS = 15.0
# Rows the control plane retired itself, or already knows missing.
_SETTLED_STATES = ("removed", "lost", ReplicaState.MISSING.value)


def active_deployments_on(node_id: str) -> Select[str, str, str]:
    """(deployment id, service id, environment id) of every ACTIVE deployment with a live replica on
    the node: what must be redeployed elsewhere when the node drains, goes DOWN or is removed."""
    return (
        select(Deployment.id, Deployment.service_id, Deployment.environment_id)
        .join(Replica, Replica.deployment_id == Deployment.id)
        .where(
            Replica.node == node_id,
            Replica.state.in_(LIVE_REPLICA_STATES),
            Deployment.status == DeploymentStatus.ACTIVE.value,
        )
        .distinct()
    )


def mark_missing(node_id: str, reported: list[str], now: datetime) -> Update:
    """Mark missing the replicas recorded on the node that it did not report (`reported`: every
    replica it has), unless recorded within MISSING_AFTER_SECONDS of `now`."""
    return (
        update(Replica)
        .where(
            Replica.node == node_id,
            Replica.state.not_in(_SETTLED_STATES),
            Replica.id.not_in(reported),
            Replica.updated_at < now - timedelta(seconds=MISSING_AFTER_SECONDS),
        )
        .values(state=ReplicaState.MISSING.value)
        .execution_options(synchronize_session=False)
    )


def missing_replicas_of_active_deployments() -> Select[str, str, str]:
    """(replica id, service id, environment id) of every missing replica of an ACTIVE deployment."""
    return (
        select(Replica.id, Deployment.service_id, Deployment.environment_id)
        .join(Deployment, Deployment.id == Replica.deployment_id)
        .where(
            Replica.state == ReplicaState.MISSING.value,
            Deployment.status == DeploymentStatus.ACTIVE.value,
        )
        .order_by(Replica.id)
    )
