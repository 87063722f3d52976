"""Questions about the fleet that several parts of the control plane ask the database (statements only)."""

from __future__ import annotations

from sqlalchemy import Select, select

from core.contracts import DeploymentStatus
from core.models import LIVE_REPLICA_STATES, Deployment, Replica


def active_deployments_on(node_id: str) -> Select[str, str, str]:
    """(deployment id, service id, environment id) of every ACTIVE deployment with a live replica on
    the node: what must be released again elsewhere when the node drains, goes DOWN or is removed."""
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
