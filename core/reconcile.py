"""Which containers on a node no deployment owns any more (pure; the fleet watch removes them).

A release removes what it replaces itself (its sweep), so what is left here was missed: a node that was
DOWN or unreachable during that sweep, a worker that died between steps, a deployment whose records
were deleted. A replica is unowned when

- its deployment is unknown to the control plane; or
- its deployment ended without serving (FAILED, CANCELLED), or was replaced (SUPERSEDED, REMOVED), at
  least `grace` ago (the deployment's own workflow has finished its cleanup by then).

Replicas of deployments still in progress or ACTIVE are never touched, not even those marked lost with
a node that was DOWN: if releasing them elsewhere failed, they may be all the service has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.contracts import DeploymentStatus, ReplicaStatus

ENDED = frozenset(
    {
        DeploymentStatus.FAILED,
        DeploymentStatus.CANCELLED,
        DeploymentStatus.SUPERSEDED,
        DeploymentStatus.REMOVED,
    }
)


@dataclass(frozen=True)
class DeploymentFacts:
    status: DeploymentStatus
    ended_at: datetime | None  # when it reached its status (finished_at, else its last update)


@dataclass(frozen=True)
class Unowned:
    replica_id: str
    reason: str


def unowned_replicas(
    replicas: Iterable[ReplicaStatus],
    deployments: Mapping[str, DeploymentFacts],
    now: datetime,
    grace: timedelta,
) -> list[Unowned]:
    """The replicas (as a node reports them) that no deployment owns, each with the reason."""
    found = []
    for replica in replicas:
        reason = _why_unowned(replica, deployments, now, grace)
        if reason is not None:
            found.append(Unowned(replica.replica_id, reason))
    return found


def _why_unowned(
    replica: ReplicaStatus,
    deployments: Mapping[str, DeploymentFacts],
    now: datetime,
    grace: timedelta,
) -> str | None:
    facts = deployments.get(replica.deployment_id or "")
    if facts is None:
        return f"deployment {replica.deployment_id} is unknown"
    if facts.status in ENDED and facts.ended_at is not None and now - facts.ended_at >= grace:
        return f"deployment {replica.deployment_id} is {facts.status}"
    return None
