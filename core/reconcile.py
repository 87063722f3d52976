"""Which containers on a node no deployment owns any more (pure; the fleet watch removes them).

A deploy removes what it replaces itself (its sweep), so what is left here was missed: a node that was
DOWN or unreachable during that sweep, a worker that died between steps, a deployment whose records
were deleted. A replica is unowned when

- its deployment is unknown to the control plane; or
- its deployment ended without serving (FAILED, CANCELLED), or was replaced (SUPERSEDED, REMOVED), at
  least `grace` ago (the deployment's own workflow has finished its cleanup by then);

and, in both cases, Temporal says the deployment's release (its DeployWorkflow) is not running: closed,
or never started. The database alone is not enough: a deployment recorded FAILED (or never recorded)
while its deploy runs is being deployed, and its replicas may be the ones about to serve. The caller
asks Temporal about `deploys_to_check` and passes the closed ones; one Temporal did not answer for
stays.

Replicas of deployments still in progress or ACTIVE are never touched, not even those marked lost with
a node that was DOWN: if redeploying them elsewhere failed, they may be all the service has.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.contracts import DeploymentStatus, ReplicaStatus
from core.naming import deploy_workflow_id

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
    workflow_id: str | None = None  # its deploy: deploy/<service>/<environment>/<deployment>


@dataclass(frozen=True)
class Unowned:
    replica_id: str
    reason: str


def deploys_to_check(
    replicas: Iterable[ReplicaStatus],
    deployments: Mapping[str, DeploymentFacts],
    now: datetime,
    grace: timedelta,
) -> dict[str, str]:
    """The deployments whose replicas the database calls unowned, each with the id of its deploy:
    Temporal must say that deploy is not running before those replicas go."""
    releases = {}
    for replica in replicas:
        deployment_id = replica.deployment_id
        if deployment_id and _unowned_by_record(replica, deployments, now, grace) is not None:
            if workflow_id := _release_of(replica, deployments.get(deployment_id)):
                releases[deployment_id] = workflow_id
    return releases


def unowned_replicas(
    replicas: Iterable[ReplicaStatus],
    deployments: Mapping[str, DeploymentFacts],
    now: datetime,
    grace: timedelta,
    closed: Collection[str],
) -> list[Unowned]:
    """The replicas (as a node reports them) that no deployment owns, each with the reason. `closed`:
    the deployments whose release Temporal said is closed or never started."""
    found = []
    for replica in replicas:
        reason = _unowned_by_record(replica, deployments, now, grace)
        if reason is None:
            continue
        deployment_id = replica.deployment_id
        checkable = deployment_id and _release_of(replica, deployments.get(deployment_id))
        if checkable and deployment_id not in closed:
            continue  # its deploy runs, or Temporal did not say: keep it
        found.append(Unowned(replica.replica_id, reason))
    return found


def _unowned_by_record(
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


def _release_of(replica: ReplicaStatus, facts: DeploymentFacts | None) -> str | None:
    """The deploy workflow id of the replica's deployment: recorded, or named from the replica's
    labels; None when neither says (no release of it can be asked about)."""
    if facts is not None and facts.workflow_id:
        return facts.workflow_id
    if replica.deployment_id and replica.service_id and replica.environment_id:
        return deploy_workflow_id(replica.service_id, replica.environment_id, replica.deployment_id)
    return None
