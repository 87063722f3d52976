"""Which replicas no deployment owns (core/reconcile.py): table-driven. A replica goes only when both the
database and Temporal say its deployment is over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.contracts import DeploymentStatus, ReplicaState, ReplicaStatus
from core.reconcile import DeploymentFacts, Unowned, deploys_to_check, unowned_replicas

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def replica(deployment_id: str | None, index: int = 0, labelled: bool = True) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=f"{deployment_id}-{index}",
        state=ReplicaState.RUNNING,
        deployment_id=deployment_id,
        service_id="svc-a" if labelled else None,
        environment_id="env-a" if labelled else None,
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
    found = unowned_replicas([replica("dep-a")], deployments, NOW, GRACE, closed={"dep-a"})
    assert found == ([] if expected_reason is None else [Unowned("dep-a-0", expected_reason)])
    # Temporal is asked about exactly the deployments the database alone calls over.
    asked = deploys_to_check([replica("dep-a")], deployments, NOW, GRACE)
    assert asked == ({} if expected_reason is None else {"dep-a": "deploy/svc-a/env-a/dep-a"})


def test_each_replica_is_judged_by_its_own_deployment() -> None:
    deployments = {
        "dep-old": ended(DeploymentStatus.SUPERSEDED, 600),
        "dep-new": ended(DeploymentStatus.ACTIVE, 10),
    }
    replicas = [replica("dep-old", 0), replica("dep-new", 0), replica("dep-old", 1), replica(None)]
    found = unowned_replicas(replicas, deployments, NOW, GRACE, closed={"dep-old"})
    assert [u.replica_id for u in found] == ["dep-old-0", "dep-old-1", "None-0"]


@pytest.mark.parametrize(
    ("facts", "closed", "removed"),
    [
        pytest.param(ended(DeploymentStatus.FAILED, 3600), {"dep-a"}, True, id="failed-release-closed"),
        pytest.param(ended(DeploymentStatus.FAILED, 3600), set(), False, id="failed-release-running"),
        pytest.param(ended(DeploymentStatus.SUPERSEDED, 600), set(), False, id="superseded-release-running"),
        pytest.param(None, set(), False, id="unknown-deployment-release-running"),
        pytest.param(None, {"dep-a"}, True, id="unknown-deployment-release-closed"),
        pytest.param(ended(DeploymentStatus.ACTIVE, 3600), {"dep-a"}, False, id="active-release-closed"),
    ],
)
def test_a_replica_whose_release_temporal_still_runs_is_kept(
    facts: DeploymentFacts | None, closed: set[str], removed: bool
) -> None:
    """`closed` lacks a deployment when its DeployWorkflow is RUNNING, or when Temporal did not answer."""
    deployments = {} if facts is None else {"dep-a": facts}
    found = unowned_replicas([replica("dep-a")], deployments, NOW, GRACE, closed)
    assert [u.replica_id for u in found] == (["dep-a-0"] if removed else [])


def test_the_release_asked_about_is_the_recorded_workflow_else_the_labels_name_it() -> None:
    recorded = DeploymentFacts(DeploymentStatus.FAILED, NOW - timedelta(hours=1), "deploy/svc-x/env-x/dep-a")
    replicas = [replica("dep-a"), replica("dep-b"), replica("dep-c", labelled=False), replica(None)]
    asked = deploys_to_check(replicas, {"dep-a": recorded}, NOW, GRACE)
    assert asked == {"dep-a": "deploy/svc-x/env-x/dep-a", "dep-b": "deploy/svc-a/env-a/dep-b"}
    # Neither recorded nor labelled, or no deployment at all: no release can be running it.
    found = unowned_replicas(replicas, {"dep-a": recorded}, NOW, GRACE, closed=set())
    assert [u.replica_id for u in found] == ["dep-c-0", "None-0"]
