"""Rollback and scale over the real API, database and Temporal server: a rollback releases an earlier
deployment again (its image by digest and its configuration, no build); a scale is handed to the service's
workflow to run in place (tests/e2e/test_scale.py runs it), or, for a deployment recorded before scaling
in place existed, releases it again with the count. No worker runs here: the new
deployment stays QUEUED; tests/e2e/test_multinode.py serves what they release."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.db import Database
from core.models import Deployment
from tests.support.api import api_settings, running_api
from tests.support.components import TemporalDevServer

IMAGE = "127.0.0.1:5000/acme/web:1"
PINNED = "127.0.0.1:5000/acme/web@sha256:" + "a" * 64


@pytest.fixture
async def api(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setattr("domain.temporal.ACCEPT_WAIT_SECONDS", 0.2)  # no worker: QUEUED after the wait
    async with running_api(api_settings(database, tmp_path, temporal_server.address)) as client:
        yield client


@pytest.fixture
async def service(api: httpx.AsyncClient, temporal_client: Client) -> AsyncIterator[dict[str, Any]]:
    project = ok(await api.post("/v1/projects", json={"name": "shop"}), 201)
    body = {"name": "web", "image": IMAGE, "port": 3000, "health_check_path": "/up"}
    created = ok(await api.post(f"/v1/projects/{project['id']}/services", json=body), 201)
    yield created
    for deployment in ok(await api.get(f"/v1/services/{created['id']}/deployments")):
        handle = temporal_client.get_workflow_handle(
            f"service/{created['id']}/{deployment['environment_id']}"
        )
        try:
            await handle.terminate("test over")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def released(
    api: httpx.AsyncClient, database: Database, service: dict[str, Any], status: str
) -> dict[str, Any]:
    """A deployment as a finished release leaves it: built, pinned, with its configuration."""
    deployment = ok(await api.post(f"/v1/services/{service['id']}/deployments", json={}), 202)
    async with database.transaction() as session:
        await session.execute(
            update(Deployment)
            .where(Deployment.id == deployment["id"])
            .values(status=status, image_ref=PINNED, image_digest="sha256:" + "a" * 64, commit_sha="c" * 40)
        )
    return ok(await api.get(f"/v1/deployments/{deployment['id']}"))  # type: ignore[no-any-return]


async def test_a_rollback_releases_the_earlier_image_by_digest_with_its_configuration(
    api: httpx.AsyncClient, database: Database, service: dict[str, Any]
) -> None:
    earlier = await released(api, database, service, "REMOVED")
    ok(
        await api.patch(
            f"/v1/services/{service['id']}", json={"port": 4000, "image": "127.0.0.1:5000/acme/web:2"}
        )
    )

    rollback = ok(
        await api.post(f"/v1/services/{service['id']}/rollback", json={"deployment_id": earlier["id"]}), 202
    )

    assert rollback["id"] != earlier["id"] and rollback["status"] == "QUEUED"
    assert rollback["image"] == PINNED
    assert rollback["source"] == {"kind": "image", "credential": False, "redeploy_of": earlier["id"]}
    assert rollback["environment_id"] == earlier["environment_id"]
    assert rollback["commit_sha"] == "c" * 40
    async with database.session() as session:
        row = await session.get(Deployment, rollback["id"])
    assert row is not None and row.config["port"] == 3000  # the snapshot, not the service's new port


async def test_a_rollback_to_a_deployment_without_an_image_is_refused(
    api: httpx.AsyncClient, service: dict[str, Any]
) -> None:
    queued = ok(await api.post(f"/v1/services/{service['id']}/deployments", json={}), 202)
    response = await api.post(f"/v1/services/{service['id']}/rollback", json={"deployment_id": queued["id"]})
    assert response.status_code == 409
    assert "never produced an image" in response.json()["detail"]


async def test_a_rollback_names_a_deployment_of_the_service(
    api: httpx.AsyncClient, service: dict[str, Any]
) -> None:
    response = await api.post(f"/v1/services/{service['id']}/rollback", json={"deployment_id": "dep_missing"})
    assert response.status_code == 404 and "dep_missing" in response.json()["detail"]


async def test_scale_of_a_deployment_without_a_deploy_request_redeploys_it_with_the_count(
    api: httpx.AsyncClient, database: Database, service: dict[str, Any]
) -> None:
    """Deployments recorded before scaling in place existed keep no deploy request."""
    active = await released(api, database, service, "ACTIVE")
    async with database.transaction() as session:
        await session.execute(
            update(Deployment).where(Deployment.id == active["id"]).values(deploy_request=None)
        )

    scaled = ok(await api.post(f"/v1/services/{service['id']}/scale", json={"replicas": 3}), 202)

    assert scaled["source"]["redeploy_of"] == active["id"] and scaled["image"] == PINNED
    async with database.session() as session:
        row = await session.get(Deployment, scaled["id"])
    assert row is not None and row.config["replicas"] == 3
    assert ok(await api.get(f"/v1/services/{service['id']}"))["replicas"] == 3


async def test_a_deployment_keeps_its_deploy_request_after_submission(
    api: httpx.AsyncClient, database: Database, service: dict[str, Any]
) -> None:
    active = await released(api, database, service, "ACTIVE")
    async with database.session() as session:
        row = await session.get(Deployment, active["id"])
    assert row is not None and row.deploy_request is not None
    assert row.deploy_request["deployment_id"] == active["id"] and row.deploy_request["port"] == 3000


async def test_scale_to_the_current_count_answers_the_active_deployment(
    api: httpx.AsyncClient, database: Database, service: dict[str, Any]
) -> None:
    active = await released(api, database, service, "ACTIVE")
    same = ok(await api.post(f"/v1/services/{service['id']}/scale", json={"replicas": 1}), 202)
    assert same["id"] == active["id"] and same["status"] == "ACTIVE"
    assert len(ok(await api.get(f"/v1/services/{service['id']}/deployments"))) == 1


async def test_scale_in_place_with_no_worker_says_so(
    api: httpx.AsyncClient, database: Database, service: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("domain.scaling.SCALE_ACCEPT_SECONDS", 0.5)
    await released(api, database, service, "ACTIVE")
    response = await api.post(f"/v1/services/{service['id']}/scale", json={"replicas": 3})
    assert response.status_code == 503 and "is `dockyard worker` running?" in response.json()["detail"]
    assert len(ok(await api.get(f"/v1/services/{service['id']}/deployments"))) == 1


async def test_scale_without_an_active_deployment_says_to_deploy_first(
    api: httpx.AsyncClient, service: dict[str, Any]
) -> None:
    response = await api.post(f"/v1/services/{service['id']}/scale", json={"replicas": 2})
    assert response.status_code == 409 and "deploy first" in response.json()["detail"]
    invalid = await api.post(f"/v1/services/{service['id']}/scale", json={"replicas": 0})
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "replicas"
