"""Which replicas no deployment owns (core/reconcile.py): table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.contracts import DeploymentStatus, ReplicaState, ReplicaStatus
from core.reconcile import DeploymentFacts, Unowned, unowned_replicas

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def replica(deployment_id: str | None, index: int = 0) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=f"{deployment_id}-{index}", state=ReplicaState.RUNNING, deployment_id=deployment_id
    )


def ended(status: DeploymentStatus, seconds_ago: float | None) -> DeploymentFacts:
    return DeploymentFacts(status, None if seconds_ago is None else NOW - timedelta(seconds=seconds_ago))


@pytest.mark.parametrize(
    ("facts", "expected_reason"),
    [
        pytest.param(None, "deployment dep-a is unknown", id="unknown-deployment"),
        pytest.param(
            ended(DeploymentStatus.SUPERSEDED, 61), "deployment dep-a is SUPERSEDED", id="superseded"
        ),
        pytest.param(ended(DeploymentStatus.FAILED, 3600), "deployment dep-a is FAILED", id="failed"),
        pytest.param(
            ended(DeploymentStatus.CANCELLED, 60), "deployment dep-a is CANCELLED", id="cancelled-at-grace"
        ),
        pytest.param(ended(DeploymentStatus.REMOVED, 120), "deployment dep-a is REMOVED", id="removed"),
        pytest.param(ended(DeploymentStatus.SUPERSEDED, 59), None, id="superseded-within-grace"),
        pytest.param(ended(DeploymentStatus.FAILED, None), None, id="ended-at-unknown-time"),
        pytest.param(ended(DeploymentStatus.ACTIVE, 3600), None, id="active"),
        pytest.param(ended(DeploymentStatus.DEPLOYING, 3600), None, id="deploying"),
        pytest.param(ended(DeploymentStatus.QUEUED, 3600), None, id="queued"),
        pytest.param(ended(DeploymentStatus.BUILDING, 3600), None, id="building"),
    ],
)
def test_a_replica_is_unowned_when(facts: DeploymentFacts | None, expected_reason: str | None) -> None:
    deployments = {} if facts is None else {"dep-a": facts}
    found = unowned_replicas([replica("dep-a")], deployments, NOW, GRACE)
    assert found == ([] if expected_reason is None else [Unowned("dep-a-0", expected_reason)])


def test_each_replica_is_judged_by_its_own_deployment() -> None:
    deployments = {
        "dep-old": ended(DeploymentStatus.SUPERSEDED, 600),
        "dep-new": ended(DeploymentStatus.ACTIVE, 10),
    }
    replicas = [replica("dep-old", 0), replica("dep-new", 0), replica("dep-old", 1), replica(None)]
    found = unowned_replicas(replicas, deployments, NOW, GRACE)
    assert [u.replica_id for u in found] == ["dep-old-0", "dep-old-1", "None-0"]
