"""The stability window after the cut-over (real Temporal dev server, activities replaced by fakes): the
previous deployment's replicas are kept while the new ones are watched; a deploy that turns unstable
is rolled back on its own (the previous route and deployment restored, FAILED at `stability` with the
reason); a newer deploy arriving in the window takes over without moving traffic back."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError

from activities.contracts import Rollback
from core.contracts import DeploymentStatus
from tests.workflows.harness import Dockyard

pytestmark = pytest.mark.timeout(120)

UNSTABLE = (
    "node fake-node: replica dep-b-0 was not stable for 10s after the cut-over: it exited with code 1 "
    "and was restarted (1 restarts); last lines of its log: Traceback ... KeyError: 'SECRET_KEY'"
)


async def test_the_previous_replicas_are_kept_until_the_window_has_passed(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")
    previous = fakes.routes[(dockyard.service_id, dockyard.environment_id)]
    window = fakes.block("watch_replicas_stable", deployment="dep-b")

    await dockyard.deploy("dep-b")
    await window.entered.wait()

    key = (dockyard.service_id, dockyard.environment_id)
    assert fakes.routes[key].deployment_id == "dep-b"
    assert fakes.fallbacks[key] == sorted(previous.servers)  # dep-a answers if no dep-b replica can
    assert fakes.status("dep-b") is DeploymentStatus.ACTIVE
    assert sorted(fakes.live_replicas) == ["dep-a-0", "dep-a-1", "dep-b-0", "dep-b-1"]
    assert await dockyard.service.query("current_deployment") == "dep-b"
    window.release()
    await dockyard.result("dep-b")
    assert sorted(fakes.live_replicas) == ["dep-b-0", "dep-b-1"]
    assert fakes.fallbacks == {}
    assert fakes.names("dep-b")[-4:] == [
        "activate_deployment",
        "watch_replicas_stable",
        "clear_route_fallback",  # before dep-a's replicas are drained and removed
        "remove_orphan_replicas",
    ]


async def test_an_unstable_release_is_rolled_back_to_the_previous_deployment(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")
    key = (dockyard.service_id, dockyard.environment_id)
    previous = fakes.routes[key]
    fakes.fail("watch_replicas_stable", UNSTABLE, type="ReplicaUnstable", deployment="dep-b")

    await dockyard.deploy("dep-b")
    with pytest.raises(WorkflowFailureError) as failed:
        await dockyard.result("dep-b")

    assert fakes.names()[-6:] == [
        "watch_replicas_stable",
        "publish_route",  # the previous route, back
        "wait_route_live",  # ... served by Traefik again
        "roll_back_deployment",
        "remove_replicas",  # the new replicas go; the previous ones were never touched
        "set_deployment_status",
    ]
    assert fakes.routes[key] == previous
    assert key not in fakes.fallbacks  # the previous route alone, as before the release
    assert fakes.args("wait_route_live")[-1] == previous
    assert fakes.args("roll_back_deployment") == [
        Rollback(
            failed_deployment_id="dep-b",
            failed_step="stability",
            reason=UNSTABLE,
            previous_deployment_id="dep-a",
        )
    ]
    assert sorted(fakes.live_replicas) == ["dep-a-0", "dep-a-1"]
    assert "remove_orphan_replicas" not in fakes.names("dep-b")
    assert fakes.status("dep-a") is DeploymentStatus.ACTIVE
    final = fakes.last_update("dep-b")
    assert (final.status, final.failed_step, final.message) == (
        DeploymentStatus.FAILED,
        "stability",
        UNSTABLE,
    )
    assert failed.value.cause is not None
    assert str(failed.value.cause).endswith(f"stability failed: {UNSTABLE}")


async def test_a_first_release_that_turns_unstable_is_unpublished(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    fakes.fail("watch_replicas_stable", UNSTABLE, type="ReplicaUnstable")

    await dockyard.deploy("dep-a")
    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-a")

    assert fakes.routes == {}
    assert fakes.live_replicas == {}
    (rollback,) = fakes.args("roll_back_deployment")
    assert rollback.previous_deployment_id is None
    final = fakes.last_update("dep-a")
    assert (final.status, final.failed_step) == (DeploymentStatus.FAILED, "stability")


async def test_a_newer_deploy_in_the_window_takes_over_without_moving_traffic_back(
    dockyard: Dockyard,
) -> None:
    fakes = dockyard.fakes
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")
    window = fakes.block("watch_replicas_stable", deployment="dep-b")
    await dockyard.deploy("dep-b")
    await window.entered.wait()

    await dockyard.deploy("dep-c")
    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-b")  # cancelled by the entity for dep-c
    await dockyard.result("dep-c")

    published = [spec.deployment_id for spec in fakes.args("publish_route")]
    assert published == ["dep-a", "dep-b", "dep-c"]
    # dep-b's fallback onto dep-a ends with its watch; dep-c's own fell back on dep-b until its window passed
    assert [owner.deployment_id for owner in fakes.args("clear_route_fallback")] == ["dep-b", "dep-c"]
    [fallback_c] = fakes.args("publish_route_fallback", "dep-c")
    assert fallback_c.servers == fakes.args("publish_route", "dep-b")[0].servers
    assert fakes.fallbacks == {}
    assert "roll_back_deployment" not in fakes.names()
    assert fakes.status("dep-b") is DeploymentStatus.ACTIVE  # as it was: ACTIVE is final, not SUPERSEDED
    assert fakes.status("dep-c") is DeploymentStatus.ACTIVE
    assert sorted(fakes.live_replicas) == ["dep-c-0", "dep-c-1"]


async def test_a_rollback_whose_route_never_goes_live_still_fails_the_release(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")
    fakes.fail("watch_replicas_stable", UNSTABLE, type="ReplicaUnstable", deployment="dep-b")
    fakes.fail("wait_route_live", "traefik did not serve it", type="RoutingTimeout", deployment="dep-a")

    await dockyard.deploy("dep-b")
    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-b")

    assert fakes.names()[-4:] == [
        "wait_route_live",
        "roll_back_deployment",
        "remove_replicas",
        "set_deployment_status",
    ]
    assert fakes.status("dep-b") is DeploymentStatus.FAILED
    assert fakes.status("dep-a") is DeploymentStatus.ACTIVE
