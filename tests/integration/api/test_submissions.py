"""Deployments reach Temporal exactly once whatever happens between the database and Temporal: the API
over both databases and a real Temporal server, the real workflows on a worker with fake activities
(tests/workflows/harness.py), the relay's passes run by the test (domain/submissions.py).

A deployment recorded and never submitted is what an API killed right after its commit leaves (the
e2e tests kill the real process there: tests/e2e/test_submission_crashes.py); a call whose answer
never comes back is made with a proxy that holds Temporal's answers (tests/support/tcp_proxy.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.deploy_workflows import closed_deploys
from core.contracts import DeploymentStatus, DeployRequest, SourceSpec
from core.db import Database
from core.models import Deployment, Service, utcnow
from core.settings import Settings
from domain.deployments import new_deployment
from domain.store import environment_by_name
from domain.submissions import UNCONFIRMED, relay_once
from domain.temporal import TemporalConnection, submit_deploy
from tests.support.api import api_settings, running_api
from tests.support.components import TemporalDevServer
from tests.support.tcp_proxy import TcpProxy, tcp_proxy
from tests.workflows.harness import Dockyard, harness

LATER = timedelta(minutes=1)  # past RELAY_AFTER: the API that recorded a deployment is done with it


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings  # the relay's: Temporal directly, not through the proxy
    proxy: TcpProxy
    database: Database
    dockyard: Dockyard

    async def relay(self) -> dict[str, str]:
        return await relay_once(
            self.database, self.settings, TemporalConnection(self.settings), utcnow() + LATER
        )

    async def new_service(self) -> dict[str, Any]:
        project = ok(await self.client.post("/v1/projects", json={"name": f"p-{uuid.uuid4().hex[:6]}"}), 201)
        return ok(  # type: ignore[no-any-return]
            await self.client.post(
                f"/v1/projects/{project['id']}/services",
                json={"name": f"web-{uuid.uuid4().hex[:6]}", "image": "registry.test/web:1"},
            ),
            201,
        )

    async def deploy(self, service: dict[str, Any]) -> dict[str, Any]:
        return ok(await self.client.post(f"/v1/services/{service['id']}/deployments", json={}), 202)  # type: ignore[no-any-return]

    async def record_only(self, service: dict[str, Any]) -> str:
        """What the deploy route commits before it calls Temporal, and nothing after: an API killed there."""
        async with self.database.session() as session:
            row = await session.get(Service, service["id"])
            assert row is not None
            environment = await environment_by_name(session, row.project_id, "production")
            pending = new_deployment(session, self.settings, row, environment, SourceSpec(kind="image"))
            await session.commit()
            return pending.deployment.id

    async def row(self, deployment_id: str) -> Deployment:
        async with self.database.session() as session:
            deployment = await session.get(Deployment, deployment_id)
            assert deployment is not None
            return deployment


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
async def api(
    database: Database,
    tmp_path: Path,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Api]:
    monkeypatch.setattr("domain.submissions.RELAY_INTERVAL_SECONDS", 3600)  # the test runs the passes
    async with harness(temporal_client) as dockyard, tcp_proxy(temporal_server.address) as proxy:
        queues = {
            "temporal_task_queue": dockyard.settings.temporal_task_queue,
            "build_task_queue": dockyard.settings.build_task_queue,
        }
        direct = api_settings(database, tmp_path, temporal_server.address).model_copy(update=queues)
        proxied = direct.model_copy(update={"temporal_address": proxy.address})
        async with running_api(proxied) as client:
            api = Api(client, direct, proxy, database, dockyard)
            try:
                yield api
            finally:
                await _stop_service_workflows(temporal_client, database)


async def _stop_service_workflows(client: Client, database: Database) -> None:
    async with database.session() as session:
        pairs = set(await session.execute(select(Deployment.service_id, Deployment.environment_id)))
    for service_id, environment_id in pairs:
        handle = client.get_workflow_handle(f"service/{service_id}/{environment_id}")
        try:
            await handle.terminate("test over")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise


async def test_a_deployment_recorded_but_never_submitted_is_released_once_by_the_relay(api: Api) -> None:
    service = await api.new_service()
    deployment_id = await api.record_only(service)

    assert (await api.row(deployment_id)).submitted_at is None
    assert await api.relay() == {deployment_id: "submitted"}
    await api.dockyard.fakes.wait_final(deployment_id)

    assert api.dockyard.fakes.status(deployment_id) is DeploymentStatus.ACTIVE
    assert len(api.dockyard.fakes.args("ensure_replicas", deployment_id)) == 1
    row = await api.row(deployment_id)
    assert row.submitted_at is not None and row.deploy_request is not None  # kept: what it runs
    assert await api.relay() == {}  # nothing left to hand over


async def test_a_deployment_temporal_has_but_the_api_never_heard_of_is_confirmed_not_released_again(
    api: Api,
) -> None:
    """The API died after Temporal took the deployment, before it recorded that."""
    service = await api.new_service()
    deployment_id = await api.record_only(service)
    request = DeployRequest.model_validate((await api.row(deployment_id)).deploy_request)
    await submit_deploy(api.dockyard.client, api.settings, request)
    await api.dockyard.fakes.wait_final(deployment_id)

    assert await api.relay() == {deployment_id: "confirmed"}
    assert len(api.dockyard.fakes.args("ensure_replicas", deployment_id)) == 1
    assert (await api.row(deployment_id)).submitted_at is not None


async def test_a_deployment_still_queued_in_its_service_workflow_is_not_queued_twice(api: Api) -> None:
    """The release has not started (an earlier one is still in flight): Temporal's ServiceWorkflow
    refuses the same deployment again, which the relay takes as its confirmation."""
    service = await api.new_service()
    fakes = api.dockyard.fakes
    first = await api.deploy(service)
    gate = fakes.block("wait_replicas_healthy", deployment=first["id"])
    second = await api.record_only(service)
    request = DeployRequest.model_validate((await api.row(second)).deploy_request)
    await submit_deploy(api.dockyard.client, api.settings, request)

    assert await api.relay() == {second: "submitted"}  # answered "already queued": nothing new
    gate.release()
    await fakes.wait_final(first["id"], second)

    assert fakes.status(second) is DeploymentStatus.ACTIVE
    assert len(fakes.args("ensure_replicas", second)) == 1


async def test_a_submission_whose_answer_is_lost_stays_queued_and_the_relay_confirms_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("domain.submissions.SUBMIT_TIMEOUT_SECONDS", 1.0)
    service = await api.new_service()
    baseline = await api.deploy(service)  # connects the API through the proxy; answered at once
    assert (await api.row(baseline["id"])).submitted_at is not None
    await api.dockyard.fakes.wait_final(baseline["id"])

    api.proxy.hold()  # Temporal gets the call; its answer never comes back
    asked = time.monotonic()
    unanswered = await api.deploy(service)
    answered_after = time.monotonic() - asked
    await api.dockyard.fakes.wait_final(unanswered["id"])  # Temporal did take it: it runs
    api.proxy.release()

    assert unanswered["status"] == "QUEUED"  # never FAILED while Temporal may run it
    assert answered_after < 5, f"the route waited {answered_after:.1f}s past its 1 s bound"
    assert unanswered["message"].startswith(UNCONFIRMED)
    assert (await api.row(unanswered["id"])).submitted_at is None
    assert await api.relay() == {unanswered["id"]: "confirmed"}
    row = await api.row(unanswered["id"])
    assert (row.submitted_at is not None, row.message, row.status) == (True, None, "QUEUED")
    assert api.dockyard.fakes.status(unanswered["id"]) is DeploymentStatus.ACTIVE
    assert len(api.dockyard.fakes.args("ensure_replicas", unanswered["id"])) == 1


async def test_an_unsubmitted_deployment_a_newer_one_overtook_is_superseded_not_released(api: Api) -> None:
    service = await api.new_service()
    older = await api.record_only(service)
    newer = await api.deploy(service)
    await api.dockyard.fakes.wait_final(newer["id"])

    assert await api.relay() == {older: "superseded"}

    row = await api.row(older)
    assert (row.status, row.message) == (
        "SUPERSEDED",
        f"superseded by {newer['id']}, a newer deployment, before it reached Temporal",
    )
    assert api.dockyard.fakes.args("ensure_replicas", older) == []
    assert api.dockyard.fakes.status(newer["id"]) is DeploymentStatus.ACTIVE


async def test_a_deployment_its_workflows_moved_on_from_queued_is_confirmed_at_once(api: Api) -> None:
    """Its status changed: only Temporal's workflows change it after QUEUED, so Temporal has it."""
    service = await api.new_service()
    deployment_id = await api.record_only(service)
    async with api.database.transaction() as session:
        await session.execute(
            update(Deployment).where(Deployment.id == deployment_id).values(status="BUILDING")
        )

    relay = TemporalConnection(api.settings.model_copy(update={"temporal_address": "127.0.0.1:9"}))
    assert await relay_once(api.database, api.settings, relay) == {deployment_id: "confirmed"}
    row = await api.row(deployment_id)
    assert row.submitted_at is not None and row.deploy_request is not None


async def test_a_recent_unsubmitted_deployment_is_left_to_the_api_submitting_it(api: Api) -> None:
    service = await api.new_service()
    deployment_id = await api.record_only(service)
    assert await relay_once(api.database, api.settings, TemporalConnection(api.settings)) == {}
    assert (await api.row(deployment_id)).status == "QUEUED"


async def test_closed_releases_are_those_temporal_says_are_not_running(temporal_client: Client) -> None:
    """What the fleet's reconciliation asks before it removes replicas (activities/deploy_workflows.py)."""
    key = uuid.uuid4().hex[:8]
    queue = f"nobody-polls-{key}"  # a started workflow stays RUNNING with no worker
    running = await temporal_client.start_workflow(
        "DeployWorkflow", id=f"deploy/s/e/run-{key}", task_queue=queue
    )
    ended = await temporal_client.start_workflow(
        "DeployWorkflow", id=f"deploy/s/e/end-{key}", task_queue=queue
    )
    await ended.terminate("over")
    try:
        closed = await closed_deploys(
            temporal_client,
            {"dep-running": running.id, "dep-ended": ended.id, "dep-never": f"deploy/s/e/never-{key}"},
        )
    finally:
        await running.terminate("test over")
    assert closed == {"dep-ended", "dep-never"}
