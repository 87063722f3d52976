"""Deploying code through the API: uploads (checked, stored, served to builders) and source rules."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from core.db import Database
from core.models import AuditEvent, Service
from tests.support.api import api_settings, running_api
from tests.support.registry import free_port


def tarball(files: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


@pytest.fixture
async def api(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}").model_copy(
        update={"max_upload_mb": 1}
    )
    async with running_api(settings) as client:
        yield client


async def code_service(api: httpx.AsyncClient, **fields: object) -> dict:
    project = (await api.post("/v1/projects", json={"name": "code"})).json()
    response = await api.post(f"/v1/projects/{project['id']}/services", json={"name": "app", **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def upload(api: httpx.AsyncClient, service_id: str, body: bytes) -> httpx.Response:
    return await api.post(
        f"/v1/services/{service_id}/deployments/upload",
        content=body,
        headers={"Content-Type": "application/gzip"},
    )


async def test_an_upload_is_stored_and_served_to_builders_byte_for_byte(api: httpx.AsyncClient) -> None:
    service = await code_service(api)
    body = tarball({"index.html": b"<h1>hi</h1>"})

    response = await upload(api, service["id"], body)

    # Temporal is down in this test: the deployment is recorded, then fails at submit.
    assert response.status_code == 503
    deployments = (await api.get(f"/v1/services/{service['id']}/deployments")).json()
    assert [(d["status"], d["failed_step"], d["source"]["kind"]) for d in deployments] == [
        ("FAILED", "submit", "upload")
    ]
    served = await api.get(f"/internal/sources/{deployments[0]['source']['upload_id']}")
    assert served.status_code == 200 and served.content == body


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "empty upload"),
        (b"not a tarball", 400, "not a tar archive"),
        (tarball({"../escape": b"x"}), 400, "points outside the source directory"),
        (tarball({"/etc/passwd": b"x"}), 400, "points outside the source directory"),
        (tarball({}, links={"link": "../../etc/passwd"}), 400, "link 'link' points outside"),
        (tarball({"big.bin": os.urandom(2 * 1024 * 1024)}), 413, "exceeds 1 MB"),
    ],
    ids=["empty", "not-tar", "dotdot", "absolute", "link-escape", "too-big"],
)
async def test_bad_uploads_are_refused_and_nothing_is_deployed(
    api: httpx.AsyncClient, body: bytes, status: int, reason: str
) -> None:
    service = await code_service(api)

    response = await upload(api, service["id"], body)

    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]
    assert (await api.get(f"/v1/services/{service['id']}/deployments")).json() == []


async def test_a_service_with_no_source_must_be_deployed_by_upload(api: httpx.AsyncClient) -> None:
    service = await code_service(api)

    response = await api.post(f"/v1/services/{service['id']}/deployments", json={})

    assert response.status_code == 422
    assert "dockyard deploy PATH" in response.json()["detail"]


async def test_a_repository_service_deploys_its_branch_or_the_given_ref(api: httpx.AsyncClient) -> None:
    service = await code_service(api, repo_url="https://git.test/acme/app.git", repo_branch="main")

    await api.post(f"/v1/services/{service['id']}/deployments", json={})
    await api.post(f"/v1/services/{service['id']}/deployments", json={"ref": "v1.2.0"})

    sources = [d["source"] for d in (await api.get(f"/v1/services/{service['id']}/deployments")).json()]
    assert sorted(s["ref"] for s in sources) == ["main", "v1.2.0"]
    assert {s["kind"] for s in sources} == {"repo"}


async def test_a_repository_token_is_stored_encrypted_and_never_returned(
    api: httpx.AsyncClient, database: Database
) -> None:
    token = "ghp_supersecret-token-123"
    service = await code_service(api, repo_url="https://git.test/acme/private.git", repo_token=token)

    assert service["has_repo_credential"] is True
    listed = await api.get(f"/v1/projects/{service['project_id']}/services")
    assert token not in listed.text and token not in str(service)
    async with database.session() as session:
        stored = await session.get(Service, service["id"])
        events = (await session.scalars(select(AuditEvent))).all()
    assert stored is not None and stored.repo_credential and token not in stored.repo_credential
    assert all(token not in str(event.detail) for event in events)
    # Only the builder's internal call reads it back.
    credential = await api.get(f"/internal/services/{service['id']}/repo-credential")
    assert credential.json() == {"kind": "token", "token": token}

    cleared = await api.patch(f"/v1/services/{service['id']}", json={"repo_token": ""})
    assert cleared.json()["has_repo_credential"] is False
    assert (await api.get(f"/internal/services/{service['id']}/repo-credential")).status_code == 404
