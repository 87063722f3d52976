"""core/scaling.plan_scale: which replicas a scale adds, removes and keeps."""

from __future__ import annotations

import pytest

from core.contracts import DeployRequest
from core.scaling import plan_scale, replica_index

PINNED = "registry.test/web@sha256:" + "a" * 64


def request() -> DeployRequest:
    return DeployRequest(
        deployment_id="dep_x1",
        service_id="svc_1",
        service_name="web",
        environment_id="env_1",
        environment_name="production",
        hostname="web-production.apps.test",
        image="registry.test/web:1",
        replicas=2,
        env={"A": "1"},
        sealed_env="sealed",
    )


@pytest.mark.parametrize(
    ("running", "replicas", "keep", "add", "remove"),
    [
        pytest.param(
            ["dep-x1-0", "dep-x1-1"], 4, ["dep-x1-0", "dep-x1-1"], ["dep-x1-2", "dep-x1-3"], [], id="up"
        ),
        pytest.param(
            ["dep-x1-0", "dep-x1-1", "dep-x1-2", "dep-x1-3"],
            1,
            ["dep-x1-0"],
            [],
            ["dep-x1-3", "dep-x1-2", "dep-x1-1"],
            id="down-highest-first",
        ),
        pytest.param(["dep-x1-0", "dep-x1-1"], 2, ["dep-x1-0", "dep-x1-1"], [], [], id="same"),
        pytest.param(
            ["dep-x1-0", "dep-x1-2"], 3, ["dep-x1-0", "dep-x1-2"], ["dep-x1-3"], [], id="after-a-gap"
        ),
        pytest.param(["dep-x1-10", "dep-x1-9"], 1, ["dep-x1-9"], [], ["dep-x1-10"], id="numeric-order"),
        pytest.param(["dep-other-0"], 1, [], ["dep-x1-0"], [], id="another-deployment-ignored"),
    ],
)
def test_plan_scale(
    running: list[str], replicas: int, keep: list[str], add: list[str], remove: list[str]
) -> None:
    plan = plan_scale(request(), PINNED, running, replicas)
    assert (plan.keep, [s.replica_id for s in plan.add], plan.remove) == (keep, add, remove)


def test_added_replicas_run_the_deployments_own_spec() -> None:
    [spec] = plan_scale(request(), PINNED, ["dep-x1-0"], 2).add
    assert spec.image == PINNED and spec.sealed_env == "sealed" and spec.deployment_id == "dep_x1"
    assert spec.env == {
        "A": "1",
        "DOCKYARD_SERVICE_NAME": "web",
        "DOCKYARD_ENVIRONMENT_NAME": "production",
        "DOCKYARD_DEPLOYMENT_ID": "dep_x1",
    }


def test_replica_index() -> None:
    assert replica_index("dep_x1", "dep-x1-7") == 7
    assert replica_index("dep_x1", "dep-x12-7") is None
    assert replica_index("dep_x1", "dep-x1-") is None
