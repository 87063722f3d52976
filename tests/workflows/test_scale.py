"""Scaling in place: the ServiceWorkflow's `scale` update runs a ScaleWorkflow over the ACTIVE deployment;
the kept replicas are never touched, and the route changes only to healthy servers."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage

from activities.contracts import ReplicaBatch, ReplicaIds, RouteSpec
from core.contracts import DeploymentStatus
from domain.errors import Conflict
from domain.scaling import submit_scale
from tests.workflows.fakes import NODE, Gate
from tests.workflows.harness import Dockyard
from workflows.scale import ScaleResult
from workflows.service import ScaleRequest, ServiceWorkflow

pytestmark = pytest.mark.timeout(120)


async def active(dockyard: Dockyard, deployment_id: str) -> None:
    await dockyard.deploy(deployment_id)
    assert (await dockyard.result(deployment_id)).status is DeploymentStatus.ACTIVE
    dockyard.fakes.deploy_requests[deployment_id] = dockyard.request(deployment_id)
    # The entity learns of the child's end a moment after the child ends.
    for _ in range(200):  # 10 s
        if await dockyard.service.query(ServiceWorkflow.current_deployment) is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the entity still releases {deployment_id}")


def scale_request(dockyard: Dockyard, deployment_id: str, replicas: int) -> ScaleRequest:
    return ScaleRequest(
        service_id=dockyard.service_id,
        environment_id=dockyard.environment_id,
        deployment_id=deployment_id,
        replicas=replicas,
    )


async def scale(dockyard: Dockyard, deployment_id: str, replicas: int) -> ScaleResult:
    async with asyncio.timeout(60):
        return await dockyard.service.execute_update(
            ServiceWorkflow.scale, scale_request(dockyard, deployment_id, replicas)
        )


def route(dockyard: Dockyard) -> RouteSpec:
    return dockyard.fakes.routes[(dockyard.service_id, dockyard.environment_id)]


def servers(*replica_ids: str) -> list[str]:
    return [f"{rid}.{NODE}:8080" for rid in replica_ids]


async def entered(gate: Gate) -> None:
    async with asyncio.timeout(30):
        await gate.entered.wait()


async def test_scale_up_then_down_keeps_the_running_replicas_and_the_deployment(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    await active(dockyard, "dep-a")
    first_spec = fakes.args("ensure_replicas", "dep-a")[0].specs[0]
    fakes.calls.clear()

    up = await scale(dockyard, "dep-a", 4)

    assert up == ScaleResult(deployment_id="dep-a", replicas=4, added=["dep-a-2", "dep-a-3"], removed=[])
    [batch] = fakes.args("ensure_replicas", "dep-a")
    assert isinstance(batch, ReplicaBatch)
    assert [s.replica_id for s in batch.specs] == ["dep-a-2", "dep-a-3"]
    for spec in batch.specs:  # exactly what the running replicas run
        assert spec.model_dump(exclude={"replica_id"}) == first_spec.model_dump(exclude={"replica_id"})
    assert fakes.args("remove_replicas") == []
    assert route(dockyard).deployment_id == "dep-a"
    assert sorted(route(dockyard).servers) == servers("dep-a-0", "dep-a-1", "dep-a-2", "dep-a-3")
    names = fakes.names("dep-a")
    assert names.index("record_replicas") < names.index("publish_route") < names.index("record_scale")
    assert fakes.scaled["dep-a"] == 4
    fakes.calls.clear()

    down = await scale(dockyard, "dep-a", 1)

    assert down.removed == ["dep-a-3", "dep-a-2", "dep-a-1"]
    assert route(dockyard).servers == servers("dep-a-0")
    assert sorted(fakes.live_replicas) == ["dep-a-0"]
    assert fakes.args("remove_replicas") == [ReplicaIds(replica_ids=["dep-a-3", "dep-a-2", "dep-a-1"])]
    assert {fakes.replica_rows[r] for r in down.removed} == {"removed"}
    names = fakes.names()
    # Rows first (so the fleet watch agrees), then the route, then the replicas go.
    assert names.index("set_replica_rows") < names.index("publish_route") < names.index("remove_replicas")
    assert "ensure_replicas" not in names and fakes.scaled["dep-a"] == 1
    assert fakes.status("dep-a") is DeploymentStatus.ACTIVE


async def test_a_scale_up_that_fails_its_health_check_removes_what_it_added(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    await active(dockyard, "dep-a")
    before = route(dockyard)
    fakes.calls.clear()
    fakes.fail("wait_replicas_healthy", "dep-a-2 exited with code 1", deployment="dep-a")

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await scale(dockyard, "dep-a", 3)

    assert "scale to 3 replicas failed at health: dep-a-2 exited with code 1" in str(refused.value.cause)
    assert (
        fakes.last_update("dep-a").message
        == "scale to 3 replicas failed at health: dep-a-2 exited with code 1"
    )
    assert fakes.status("dep-a") is DeploymentStatus.ACTIVE
    assert fakes.args("remove_replicas") == [ReplicaIds(replica_ids=["dep-a-2"], grace_seconds=1)]
    assert sorted(fakes.live_replicas) == ["dep-a-0", "dep-a-1"]
    assert route(dockyard) == before and "record_scale" not in fakes.names()
    # The entity carries on: the next scale runs.
    fakes._rules.clear()
    assert (await scale(dockyard, "dep-a", 3)).added == ["dep-a-2"]


async def test_a_scale_is_refused_while_a_release_is_in_progress(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    await active(dockyard, "dep-a")
    health = fakes.block("wait_replicas_healthy", deployment="dep-b")
    await dockyard.deploy("dep-b")
    await entered(health)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await scale(dockyard, "dep-a", 3)

    assert "deployment dep-b is being deployed; scale once its deploy is done" in str(refused.value.cause)
    with pytest.raises(Conflict) as answered:  # what the scale route answers: 409 with the reason
        await submit_scale(dockyard.client, scale_request(dockyard, "dep-a", 3))
    assert answered.value.detail == (
        "scale refused: deployment dep-b is being deployed; scale once its deploy is done"
    )
    health.release()
    assert (await dockyard.result("dep-b")).status is DeploymentStatus.ACTIVE


async def test_a_deploy_arriving_during_a_scale_waits_for_it(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    await active(dockyard, "dep-a")
    health = fakes.block("wait_replicas_healthy", deployment="dep-a")
    update = await dockyard.service.start_update(
        ServiceWorkflow.scale,
        scale_request(dockyard, "dep-a", 3),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await entered(health)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await scale(dockyard, "dep-a", 5)
    assert "a scale of dep-a to 3 replicas is in progress" in str(refused.value.cause)

    await dockyard.deploy("dep-b")
    await asyncio.sleep(0.5)
    assert not await dockyard.child_exists("dep-b")

    health.release()
    assert (await update.result()).added == ["dep-a-2"]
    assert (await dockyard.result("dep-b")).status is DeploymentStatus.ACTIVE
    assert sorted(fakes.live_replicas) == ["dep-b-0", "dep-b-1"]
