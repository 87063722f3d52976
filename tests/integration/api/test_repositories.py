"""A repository credential stays with the host it was given for, travels only encrypted, and never
sits in a URL; file:// repositories only when an admin enables them. Over the real API, both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.db import Database
from domain.repositories import repository_host
from tests.support.api import api_settings, running_api
from tests.support.registry import free_port

TOKEN_A = "ghp_token-for-host-a"
TOKEN_B = "glpat-token-for-host-b"

Api = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def api_with(database: Database, tmp_path: Path) -> Api:
    def start(**changes: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")
        return running_api(settings.model_copy(update=changes))

    return start


@pytest.fixture
async def api(api_with: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api_with() as client:
        yield client


async def service(api: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    project = await api.post("/v1/projects", json={"name": "code"})
    project_id = (
        project.json()["id"]
        if project.status_code == 201
        else (await api.get("/v1/projects")).json()[0]["id"]
    )
    return await api.post(f"/v1/projects/{project_id}/services", json={"name": f"app{len(fields)}", **fields})


def refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "repo_url", "reason": response.json()["errors"][0]["reason"]}
    ]
    assert reason in response.json()["detail"], response.text


async def test_a_credential_is_dropped_when_the_repository_moves_to_another_host(
    api: httpx.AsyncClient,
) -> None:
    created = await service(api, repo_url="https://git.a.test/acme/app.git", repo_token=TOKEN_A)
    assert created.status_code == 201, created.text
    service_id = created.json()["id"]

    same_host = (
        await api.patch(f"/v1/services/{service_id}", json={"repo_url": "https://git.a.test/acme/other.git"})
    ).json()
    assert same_host["has_repo_credential"] is True and same_host["notices"] == []

    moved = (
        await api.patch(f"/v1/services/{service_id}", json={"repo_url": "https://git.b.test/acme/app.git"})
    ).json()
    assert moved["has_repo_credential"] is False
    assert moved["notices"] and "git.a.test" in moved["notices"][0] and "git.b.test" in moved["notices"][0]

    with_new = await api.patch(
        f"/v1/services/{service_id}",
        json={"repo_url": "https://git.c.test/acme/app.git", "repo_token": TOKEN_B},
    )
    assert with_new.status_code == 200 and with_new.json()["has_repo_credential"] is True
    assert with_new.json()["notices"] == []


async def test_a_credential_never_travels_over_plain_http_unless_the_host_is_listed(api_with: Api) -> None:
    async with api_with() as api:
        refused(
            await service(api, repo_url="http://git.test/acme/app.git", repo_token=TOKEN_A),
            "never sent over plain http://",
        )
        plain = await service(api, repo_url="http://git.test/acme/public.git")  # no credential: fine
        assert plain.status_code == 201, plain.text
        refused(
            await api.patch(f"/v1/services/{plain.json()['id']}", json={"repo_token": TOKEN_A}),
            "never sent over plain http://",
        )
    async with api_with(insecure_repository_hosts=["git.test"]) as api:
        listed = await service(api, repo_url="http://GIT.test/acme/app.git", repo_token=TOKEN_A)
        assert listed.status_code == 201, listed.text


async def test_a_password_in_the_url_is_refused(api: httpx.AsyncClient) -> None:
    refused(await service(api, repo_url="https://bob:hunter2@git.test/acme/app.git"), "repo_token")
    fine = await service(api, repo_url="https://bob@git.test/acme/app.git")  # a user name alone is no secret
    assert fine.status_code == 201, fine.text


async def test_file_repositories_need_the_admin_setting_and_take_no_credential(api_with: Api) -> None:
    async with api_with() as api:
        refused(await service(api, repo_url="file:///srv/git/app"), "DOCKYARD_ALLOW_FILE_REPOSITORIES")
    async with api_with(allow_file_repositories=True) as api:
        assert (await service(api, repo_url="file:///srv/git/app")).status_code == 201
        refused(await service(api, repo_url="file:///srv/git/app", repo_token=TOKEN_A), "no credential")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://Git.Example.com/acme/app.git", "git.example.com"),
        ("https://user@git.example.com:8443/acme/app.git", "git.example.com"),
        ("ssh://git@git.example.com:2222/acme/app.git", "git.example.com"),
        ("git@github.com:acme/app.git", "github.com"),
        ("file:///srv/git/app", "file"),
    ],
)
def test_the_host_a_credential_is_bound_to(url: str, host: str) -> None:
    assert repository_host(url) == host
