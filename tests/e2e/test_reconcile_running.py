"""The fleet's reconciliation never removes the replicas of a deployment Temporal is still releasing, even
when the database calls it over: the real platform, an enrolled node (tests/support/fleet.py), the
worker's real `remove_unowned_replicas` activity (activities/agents.py, core/reconcile.py) asking the
platform's Temporal.

The release is held in its cleanup step by the service's overlap seconds (its replicas serve, its
DeployWorkflow runs); the database is then made to say FAILED an hour ago, as a submission that failed
while Temporal took it once did. Its replicas stay; once the deploy is closed (terminated, so nothing
of its own cleanup runs), reconciliation removes them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from temporalio.testing import ActivityEnvironment

from activities.agents import AgentActivities
from core.db import Database
from core.models import Deployment
from core.settings import load_settings
from core.temporal import connect
from tests.support.fleet import EnrolledFleet
from tests.support.platform import AppImages, Platform

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("enrolled_fleet", [{"count": 1}], indirect=True)
async def test_replicas_of_a_deployment_recorded_failed_while_its_release_runs_are_kept_until_it_closes(
    platform: Platform,
    app_images: AppImages,
    enrolled_fleet: EnrolledFleet,
) -> None:
    fleet = enrolled_fleet
    image = app_images.push("e2e/reconcile", "v1", "still releasing")
    service = platform.create_service(
        "e2e-reconcile-running",
        "web",
        image,
        replicas=2,
        health_check_path="/healthz",
        overlap_seconds=600,
        constraints=[f"fleet={fleet.fleet_id}"],
    )
    deployment = platform.deploy(service["id"])
    settings = load_settings(
        state_dir=platform.state_dir, temporal_address=platform.env["DOCKYARD_TEMPORAL_ADDRESS"]
    )
    client = await connect(settings)
    db = Database(settings.database_url)
    try:
        replicas = await _wait_serving(platform, fleet, deployment["id"])
        async with db.transaction() as session:  # what the API once recorded on an unanswered submit
            await session.execute(
                update(Deployment)
                .where(Deployment.id == deployment["id"])
                .values(
                    status="FAILED",
                    failed_step="submit",
                    finished_at=datetime.now(UTC) - timedelta(hours=1),
                )
            )
        reconcile = AgentActivities(settings, db).remove_unowned_replicas

        removed = await ActivityEnvironment(client).run(reconcile)

        assert not set(removed) & replicas
        assert await _on_node(fleet, deployment["id"]) == replicas
        await client.get_workflow_handle(deployment["workflow_id"]).terminate("the deploy is over")
        removed = await ActivityEnvironment(client).run(reconcile)
        # The fleet watch of the platform reconciles every 30 s too: either may have removed them.
        assert set(removed) <= replicas
        assert await _on_node(fleet, deployment["id"]) == set()
    finally:
        await db.dispose()


async def _wait_serving(platform: Platform, fleet: EnrolledFleet, deployment_id: str) -> set[str]:
    """Until the deploy has cut over (its replicas serve) and sleeps out its overlap."""
    for _ in range(600):
        current = platform.api.get(f"/v1/deployments/{deployment_id}").json()
        assert current["status"] not in ("FAILED", "SUPERSEDED", "CANCELLED"), current
        if current["status"] == "ACTIVE":
            replicas = await _on_node(fleet, deployment_id)
            assert len(replicas) == 2, replicas
            return replicas
        await asyncio.sleep(0.2)
    pytest.fail(f"{deployment_id} never served")


async def _on_node(fleet: EnrolledFleet, deployment_id: str) -> set[str]:
    async with fleet.client(0) as agent:
        return {r.replica_id for r in await agent.replicas() if r.deployment_id == deployment_id}
