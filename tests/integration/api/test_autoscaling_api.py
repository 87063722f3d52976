"""The autoscaling routes over the real API (both databases) and a real Temporal: a policy is checked
field by field, saved, and starts the service's AutoscalerWorkflow (searchable by ServiceId); reading it,
its decisions, and removing it; a policy saved while Temporal is away is started by the worker later."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from core.db import Database
from core.models import ScalingEvent, utcnow
from core.naming import autoscaler_workflow_id
from domain.autoscaling import ensure_autoscalers
from tests.support.api import api_settings, running_api
from tests.support.components import TemporalDevServer
from tests.support.registry import free_port

POLICY = {"min_replicas": 1, "max_replicas": 4, "targets": {"cpu_percent": 60, "requests_per_second": 50}}


@pytest.fixture
async def api(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer, temporal_client: Client
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(api_settings(database, tmp_path, temporal_server.address)) as client:
        try:
            yield client
        finally:
            async for found in temporal_client.list_workflows("WorkflowType = 'AutoscalerWorkflow'"):
                if found.status == WorkflowExecutionStatus.RUNNING:
                    try:
                        await temporal_client.get_workflow_handle(found.id).terminate(reason="test over")
                    except RPCError as exc:
                        if exc.status != RPCStatusCode.NOT_FOUND:
                            raise


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def a_service(api: httpx.AsyncClient, name: str = "auto") -> dict[str, Any]:
    project = ok(await api.post("/v1/projects", json={"name": name}), 201)
    return ok(  # type: ignore[no-any-return]
        await api.post(
            f"/v1/projects/{project['id']}/services", json={"name": "web", "image": "127.0.0.1:5000/a:1"}
        ),
        201,
    )


async def test_a_policy_is_saved_and_starts_the_services_autoscaler(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    service = await a_service(api)
    path = f"/v1/services/{service['id']}/autoscaling"

    saved = ok(await api.put(path, json=POLICY))

    assert saved["environment"] == "production"
    assert saved["policy"]["targets"] == {
        "cpu_percent": 60.0,
        "memory_percent": None,
        "requests_per_second": 50.0,
    }
    assert saved["policy"]["behaviour"]["scale_down_window_seconds"] == 300
    workflow_id = autoscaler_workflow_id(service["id"], saved["environment_id"])
    described = await temporal_client.get_workflow_handle(workflow_id).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    found = [w.id async for w in temporal_client.list_workflows(f"ServiceId = '{service['id']}'")]
    assert workflow_id in found
    assert ok(await api.get(path))["policy"] == saved["policy"]
    # Saved again with other bounds: the same workflow reads them.
    ok(await api.put(path, json={**POLICY, "max_replicas": 8}))
    assert ok(await api.get(path))["policy"]["max_replicas"] == 8
    assert ok(await api.get(f"/v1/services/{service['id']}/scaling-events")) == []

    ok(await api.delete(path), 204)
    missing = await api.get(path)
    assert missing.status_code == 404 and "autoscaling of service" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**POLICY, "max_replicas": 0}, "max_replicas"),
        ({**POLICY, "min_replicas": 5}, "max_replicas"),
        ({**POLICY, "targets": {}}, "targets"),
        ({**POLICY, "targets": {"cpu_percent": -1}}, "targets.cpu_percent"),
        (
            {**POLICY, "behaviour": {"scale_down_window_seconds": 99999}},
            "behaviour.scale_down_window_seconds",
        ),
        ({**POLICY, "surprise": 1}, "surprise"),
    ],
    ids=["max-zero", "max-below-min", "no-target", "negative-target", "window-too-long", "unknown-field"],
)
async def test_a_bad_policy_is_refused_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    service = await a_service(api, name="refused")

    response = await api.put(f"/v1/services/{service['id']}/autoscaling", json=body)

    assert response.status_code == 422, response.text
    assert any(field in error["field"] or field in error["reason"] for error in response.json()["errors"])
    assert (await api.get(f"/v1/services/{service['id']}/autoscaling")).status_code == 404


async def test_decisions_are_listed_newest_first(api: httpx.AsyncClient, database: Database) -> None:
    service = await a_service(api, name="decided")
    (environment,) = ok(await api.get(f"/v1/projects/{service['project_id']}/environments"))
    async with database.transaction() as session:
        for current, desired in ((2, 4), (4, 1)):
            session.add(
                ScalingEvent(
                    service_id=service["id"],
                    environment_id=environment["id"],
                    at=utcnow(),
                    current=current,
                    recommendation=desired,
                    desired=desired,
                    reason=f"{current} → {desired}",
                    inputs={"metrics": []},
                    result="scaled",
                )
            )
            await session.flush()

    events = ok(await api.get(f"/v1/services/{service['id']}/scaling-events", params={"limit": 10}))

    assert [(e["current"], e["desired"]) for e in events] == [(4, 1), (2, 4)]


async def test_a_policy_saved_while_temporal_is_away_is_started_by_the_worker(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer, temporal_client: Client
) -> None:
    away = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")
    async with running_api(away) as api:
        service = await a_service(api, name="later")
        response = await api.put(f"/v1/services/{service['id']}/autoscaling", json=POLICY)
        assert response.status_code == 503, response.text
        saved = ok(await api.get(f"/v1/services/{service['id']}/autoscaling"))

    settings = away.model_copy(update={"temporal_address": temporal_server.address})
    async with database.session() as session:
        assert await ensure_autoscalers(session, temporal_client, settings) == 1
    handle = temporal_client.get_workflow_handle(
        autoscaler_workflow_id(service["id"], saved["environment_id"])
    )
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.terminate(reason="test over")
