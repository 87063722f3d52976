"""DeployWorkflow as a saga, on a real Temporal dev server, with every activity replaced by a fake."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.contracts import ReplicaIds, RouteKey, RouteSpec
from core.contracts import DeploymentStatus, DeployResult
from core.naming import replica_id
from core.temporal import DEPLOYMENT_ID, ENVIRONMENT_ID, SERVICE_ID
from tests.workflows.harness import Dockyard

pytestmark = pytest.mark.timeout(120)

HAPPY_PATH = [
    "set_deployment_status",  # DEPLOYING: resolving image
    "resolve_image",
    "set_deployment_status",  # DEPLOYING: starting replicas, with the digest
    "place_replicas",
    "ensure_replicas",
    "record_replicas",
    "wait_replicas_healthy",
    "get_route",
    "publish_route",
    "wait_route_live",
    "activate_deployment",
    "watch_replicas_stable",
    "remove_orphan_replicas",
    "mark_replicas_removed",
]


async def test_a_deploy_runs_every_step_in_order_and_ends_active(dockyard: Dockyard) -> None:
    accepted = await dockyard.deploy("dep-a")

    result: DeployResult = await dockyard.result("dep-a")

    fakes = dockyard.fakes
    assert accepted.workflow_id == f"deploy/{dockyard.service_id}/{dockyard.environment_id}/dep-a"
    assert fakes.names() == HAPPY_PATH
    assert fakes.statuses("dep-a") == [
        DeploymentStatus.DEPLOYING,
        DeploymentStatus.DEPLOYING,
        DeploymentStatus.ACTIVE,
    ]
    assert result.status is DeploymentStatus.ACTIVE
    (resolved,) = fakes.args("resolve_image")
    assert resolved == "registry.test/apps/web:dep-a"
    assert fakes.updates["dep-a"][1].image_digest == result.image_digest
    (batch,) = fakes.args("ensure_replicas")
    assert [s.replica_id for s in batch.specs] == [replica_id("dep-a", 0), replica_id("dep-a", 1)]
    assert {s.image for s in batch.specs} == {f"registry.test/apps/web@{result.image_digest}"}
    assert fakes.args("publish_route") == [
        RouteSpec(
            service_id=dockyard.service_id,
            environment_id=dockyard.environment_id,
            hostname="web-production.apps.test",
            deployment_id="dep-a",
            servers=["dep-a-0.fake-node:8080", "dep-a-1.fake-node:8080"],
        )
    ]
    (orphans,) = fakes.args("remove_orphan_replicas")
    assert orphans.keep_deployment_ids == ["dep-a"]
    assert await dockyard.service.query("current_deployment") is None


async def test_the_child_workflow_is_findable_by_its_search_attributes(dockyard: Dockyard) -> None:
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")

    described = await dockyard.child("dep-a").describe()

    attributes = described.typed_search_attributes
    assert described.workflow_type == "DeployWorkflow"
    assert described.parent_id == f"service/{dockyard.service_id}/{dockyard.environment_id}"
    assert attributes.get(SERVICE_ID) == dockyard.service_id
    assert attributes.get(ENVIRONMENT_ID) == dockyard.environment_id
    assert attributes.get(DEPLOYMENT_ID) == "dep-a"


async def test_a_second_deploy_replaces_the_first_and_removes_its_replicas(dockyard: Dockyard) -> None:
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")
    await dockyard.deploy("dep-b")
    await dockyard.result("dep-b")

    fakes = dockyard.fakes
    assert fakes.names("dep-b") == [
        "set_deployment_status",
        "resolve_image",
        "set_deployment_status",
        "place_replicas",
        "ensure_replicas",
        "record_replicas",
        "wait_replicas_healthy",
        "publish_route",
        "publish_route_fallback",  # onto dep-a's replicas, through the stability window
        "wait_route_live",
        "activate_deployment",
        "watch_replicas_stable",
        "clear_route_fallback",  # the window has passed: dep-a's replicas are drained next
        "remove_orphan_replicas",
    ]
    assert fakes.routes[(dockyard.service_id, dockyard.environment_id)].deployment_id == "dep-b"
    assert fakes.fallbacks == {}
    assert sorted(fakes.live_replicas) == ["dep-b-0", "dep-b-1"]


async def test_an_image_that_cannot_be_resolved_fails_at_resolve_before_any_replica(
    dockyard: Dockyard,
) -> None:
    message = "image registry.test/apps/web:dep-a not found: 404 MANIFEST_UNKNOWN"
    dockyard.fakes.fail("resolve_image", message, type="ImageNotFound")

    await dockyard.deploy("dep-a")
    with pytest.raises(WorkflowFailureError) as failed:
        await dockyard.result("dep-a")

    fakes = dockyard.fakes
    assert fakes.names() == ["set_deployment_status", "resolve_image", "set_deployment_status"]
    final = fakes.last_update("dep-a")
    assert (final.status, final.failed_step, final.message) == (DeploymentStatus.FAILED, "resolve", message)
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "DeployFailed"
    assert failed.value.cause.message == f"resolve failed: {message}"


async def test_a_failed_health_check_removes_the_new_replicas(dockyard: Dockyard) -> None:
    message = "node fake-node: replica dep-a-1 exited before it became healthy: exit code 3"
    dockyard.fakes.fail("wait_replicas_healthy", message, type="ReplicaExited")

    await dockyard.deploy("dep-a")
    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-a")

    fakes = dockyard.fakes
    assert fakes.names()[-3:] == ["wait_replicas_healthy", "remove_replicas", "set_deployment_status"]
    assert fakes.args("remove_replicas") == [ReplicaIds(replica_ids=["dep-a-0", "dep-a-1"], grace_seconds=1)]
    assert fakes.live_replicas == {}
    assert "publish_route" not in fakes.names()
    final = fakes.last_update("dep-a")
    assert (final.status, final.failed_step, final.message) == (DeploymentStatus.FAILED, "health", message)


async def test_a_route_that_never_goes_live_restores_the_previous_route(dockyard: Dockyard) -> None:
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")
    key = (dockyard.service_id, dockyard.environment_id)
    previous = dockyard.fakes.routes[key]
    message = "traefik did not serve web-production.apps.test within 30s"
    dockyard.fakes.fail("wait_route_live", message, type="RoutingTimeout", deployment="dep-b")

    await dockyard.deploy("dep-b")
    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-b")

    fakes = dockyard.fakes
    published = fakes.args("publish_route")
    assert [spec.deployment_id for spec in published] == ["dep-a", "dep-b", "dep-a"]
    assert published[-1] == previous
    assert fakes.routes[key] == previous
    assert fakes.names()[-4:] == [
        "wait_route_live",
        "publish_route",
        "remove_replicas",
        "set_deployment_status",
    ]
    assert sorted(fakes.live_replicas) == ["dep-a-0", "dep-a-1"]
    final = fakes.last_update("dep-b")
    assert (final.status, final.failed_step, final.message) == (DeploymentStatus.FAILED, "route", message)
    assert fakes.status("dep-a") is DeploymentStatus.ACTIVE


async def test_a_first_route_that_never_goes_live_is_unpublished(dockyard: Dockyard) -> None:
    dockyard.fakes.fail("wait_route_live", "traefik did not serve it", type="RoutingTimeout")

    await dockyard.deploy("dep-a")
    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-a")

    fakes = dockyard.fakes
    assert fakes.names()[-4:] == [
        "wait_route_live",
        "unpublish_route",
        "remove_replicas",
        "set_deployment_status",
    ]
    assert fakes.args("unpublish_route") == [
        RouteKey(service_id=dockyard.service_id, environment_id=dockyard.environment_id)
    ]
    assert fakes.routes == {}
    assert fakes.last_update("dep-a").failed_step == "route"


async def test_replicas_placed_on_several_nodes_start_there_and_all_serve(dockyard: Dockyard) -> None:
    fakes = dockyard.fakes
    fakes.nodes = ("node-a", "node-b", "node-c")
    await dockyard.deploy("dep-a", replicas=3)
    await dockyard.result("dep-a")

    batches = fakes.args("ensure_replicas")
    assert sorted(b.node.node_id for b in batches) == ["node-a", "node-b", "node-c"]
    assert all(len(b.specs) == 1 for b in batches)
    [route] = fakes.args("publish_route")
    assert sorted(server.split(".")[1].split(":")[0] for server in route.servers) == [
        "node-a",
        "node-b",
        "node-c",
    ]


async def test_a_failed_health_check_on_one_node_removes_the_new_replicas_from_every_node(
    dockyard: Dockyard,
) -> None:
    fakes = dockyard.fakes
    fakes.nodes = ("node-a", "node-b")
    fakes.fail(
        "wait_replicas_healthy", "replica never healthy", type="HealthCheckTimeout", deployment="dep-a"
    )
    await dockyard.deploy("dep-a", replicas=2)

    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-a")

    removed = fakes.args("remove_replicas")
    assert sorted(ids.node.node_id for ids in removed) == ["node-a", "node-b"]
    assert fakes.live_replicas == {}
    assert fakes.last_update("dep-a").failed_step == "health"
