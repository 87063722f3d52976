"""ServiceWorkflow, the entity of one service+environment: deploys queue, supersede and are validated."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError

from activities.contracts import ReplicaIds
from core.contracts import DeploymentStatus
from tests.workflows.fakes import Gate
from tests.workflows.harness import Dockyard
from workflows.service import ServiceWorkflow

pytestmark = pytest.mark.timeout(120)

SUPERSEDED_UNSTARTED = "superseded by a newer deployment before it started"


async def entered(gate: Gate) -> None:
    async with asyncio.timeout(30):
        await gate.entered.wait()


def active(dockyard: Dockyard, *deployment_ids: str) -> list[str]:
    return [d for d in deployment_ids if dockyard.fakes.status(d) is DeploymentStatus.ACTIVE]


async def test_a_newer_deploy_supersedes_one_in_flight_and_its_compensations_run(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    health = fakes.block("wait_replicas_healthy", deployment="dep-a")
    await dockyard.deploy("dep-a")
    await entered(health)

    await dockyard.deploy("dep-b")
    result_b = await dockyard.result("dep-b")
    with pytest.raises(WorkflowFailureError) as superseded:
        await dockyard.result("dep-a")

    assert isinstance(superseded.value.cause, CancelledError)
    assert fakes.statuses("dep-a")[-1] is DeploymentStatus.SUPERSEDED
    assert fakes.last_update("dep-a").message == "superseded by a newer deployment"
    assert fakes.args("remove_replicas", "dep-a") == [
        ReplicaIds(replica_ids=["dep-a-0", "dep-a-1"], grace_seconds=1)
    ]
    assert "publish_route" not in fakes.names("dep-a")
    assert result_b.status is DeploymentStatus.ACTIVE
    assert fakes.routes[(dockyard.service_id, dockyard.environment_id)].deployment_id == "dep-b"
    assert sorted(fakes.live_replicas) == ["dep-b-0", "dep-b-1"]


async def test_of_three_rapid_deploys_the_middle_one_is_superseded_before_it_starts(
    dockyard: Dockyard,
) -> None:
    fakes = dockyard.fakes
    health = fakes.block("wait_replicas_healthy", deployment="dep-a")
    compensation = fakes.block("remove_replicas", deployment="dep-a")  # keeps A busy while B and C arrive
    await dockyard.deploy("dep-a")
    await entered(health)

    await dockyard.deploy("dep-b")
    await entered(compensation)
    await dockyard.deploy("dep-c")
    compensation.release()
    await fakes.wait_final("dep-a", "dep-b", "dep-c")

    assert fakes.status("dep-a") is DeploymentStatus.SUPERSEDED
    assert fakes.names("dep-b") == ["set_deployment_status"]
    assert fakes.last_update("dep-b").message == SUPERSEDED_UNSTARTED
    assert fakes.status("dep-b") is DeploymentStatus.SUPERSEDED
    assert not await dockyard.child_exists("dep-b")
    assert (await dockyard.result("dep-c")).status is DeploymentStatus.ACTIVE
    assert active(dockyard, "dep-a", "dep-b", "dep-c") == ["dep-c"]


async def test_a_deploy_arriving_while_older_ones_are_superseded_is_the_one_released(
    dockyard: Dockyard,
) -> None:
    fakes = dockyard.fakes
    health = fakes.block("wait_replicas_healthy", deployment="dep-a")
    compensation = fakes.block("remove_replicas", deployment="dep-a")
    superseding_b = fakes.block("set_deployment_status", deployment="dep-b")
    await dockyard.deploy("dep-a")
    await entered(health)
    await dockyard.deploy("dep-b")
    await entered(compensation)
    await dockyard.deploy("dep-c")
    compensation.release()

    await entered(superseding_b)  # the entity is marking B superseded; C is next in line
    await dockyard.deploy("dep-d")
    superseding_b.release()
    await fakes.wait_final("dep-a", "dep-b", "dep-c", "dep-d")
    await fakes.wait_for(lambda: "mark_replicas_removed" in fakes.names(), "the cleanup of dep-d")

    assert fakes.status("dep-c") is DeploymentStatus.SUPERSEDED
    assert (await dockyard.result("dep-d")).status is DeploymentStatus.ACTIVE
    assert active(dockyard, "dep-a", "dep-b", "dep-c", "dep-d") == ["dep-d"]
    assert fakes.routes[(dockyard.service_id, dockyard.environment_id)].deployment_id == "dep-d"


async def test_a_newer_deploy_does_not_cut_short_the_compensation_of_a_failed_one(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")
    fakes.fail("wait_route_live", "traefik did not serve it", type="RoutingTimeout", deployment="dep-b")
    restoring = fakes.block("publish_route", deployment="dep-a")  # the restore of A's route

    await dockyard.deploy("dep-b")
    await entered(restoring)
    await dockyard.deploy("dep-c")
    restoring.release()
    await fakes.wait_final("dep-b", "dep-c")
    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-b")

    assert fakes.args("remove_replicas", "dep-b") == [
        ReplicaIds(replica_ids=["dep-b-0", "dep-b-1"], grace_seconds=1)
    ]
    final_b = fakes.last_update("dep-b")
    assert (final_b.status, final_b.failed_step) == (DeploymentStatus.FAILED, "route")
    assert (await dockyard.result("dep-c")).status is DeploymentStatus.ACTIVE


async def test_a_deploy_sent_to_another_services_workflow_is_rejected(dockyard: Dockyard) -> None:
    await dockyard.deploy("dep-a")
    stranger = dockyard.request("dep-x", service_id="svc-someone-else")

    with pytest.raises(WorkflowUpdateFailedError) as rejected:
        await dockyard.service.execute_update(ServiceWorkflow.deploy, stranger)

    assert isinstance(rejected.value.cause, ApplicationError)
    expected = f"service/svc-someone-else/{dockyard.environment_id}"
    assert rejected.value.cause.message == f"deploy for {expected} sent to {dockyard.service.id}"
    await dockyard.result("dep-a")
    assert "dep-x" not in {c.deployment_id for c in dockyard.fakes.calls}


async def test_a_deployment_already_in_flight_or_queued_is_rejected(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    health = fakes.block("wait_replicas_healthy", deployment="dep-a")
    compensation = fakes.block("remove_replicas", deployment="dep-a")
    await dockyard.deploy("dep-a")
    await entered(health)

    with pytest.raises(WorkflowUpdateFailedError) as in_flight:
        await dockyard.service.execute_update(ServiceWorkflow.deploy, dockyard.request("dep-a"))
    await dockyard.deploy("dep-b")
    await entered(compensation)
    # The API submitting it again (its relay, after a crash or a lost answer): the same rejection is
    # its confirmation that Temporal has the deployment, and nothing is queued twice.
    again = await dockyard.deploy("dep-b")
    compensation.release()
    await fakes.wait_final("dep-a", "dep-b")

    assert isinstance(in_flight.value.cause, ApplicationError)
    assert in_flight.value.cause.message == "deployment dep-a is already queued"
    assert again.deployment_id == "dep-b"
    assert fakes.status("dep-b") is DeploymentStatus.ACTIVE
    assert len(fakes.args("ensure_replicas", "dep-b")) == 1


async def test_a_deployment_already_released_is_never_released_again(dockyard: Dockyard) -> None:
    await dockyard.deploy("dep-a")
    await dockyard.fakes.wait_final("dep-a")
    await dockyard.deploy("dep-b")
    await dockyard.fakes.wait_final("dep-b")

    with pytest.raises(WorkflowUpdateFailedError) as replayed:
        await dockyard.service.execute_update(ServiceWorkflow.deploy, dockyard.request("dep-a"))

    assert isinstance(replayed.value.cause, ApplicationError)
    assert "dep-a was already deployed" in replayed.value.cause.message
    # The API's submission of it again is answered as accepted, and releases nothing.
    assert (await dockyard.deploy("dep-a")).deployment_id == "dep-a"
    await asyncio.sleep(0.5)
    assert len(dockyard.fakes.args("ensure_replicas", "dep-a")) == 1
    assert dockyard.fakes.status("dep-b") is DeploymentStatus.ACTIVE


async def test_cancelling_the_entity_cancels_its_release_and_ends_it(dockyard: Dockyard) -> None:
    health = dockyard.fakes.block("wait_replicas_healthy", deployment="dep-a")
    await dockyard.deploy("dep-a")
    await entered(health)

    await dockyard.service.cancel()
    with pytest.raises(WorkflowFailureError):
        await dockyard.service.result()

    assert dockyard.fakes.status("dep-a") is DeploymentStatus.SUPERSEDED
    assert (await dockyard.service.describe()).status == WorkflowExecutionStatus.CANCELED
