"""The audit log over the real API (in process), on SQLite and PostgreSQL: who, what, which object, which
project, from where and the result of every change; refused writes too; filters; who may read it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.db import Database
from domain.actors import BOOTSTRAP, PlatformRole
from domain.users import create_user
from tests.support.api import TOKEN, api_settings, api_transport, client_of
from tests.support.redis_server import RedisServer
from tests.support.registry import free_port

PASSWORD = "a password for the audit"


@pytest.fixture
async def transport(
    database: Database, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[httpx.ASGITransport]:
    settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")
    async with api_transport(settings.model_copy(update={"redis_url": redis_server.url})) as running:
        yield running


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def person_token(database: Database, transport: httpx.ASGITransport, email: str) -> str:
    async with database.session() as session:
        await create_user(
            session, BOOTSTRAP, email=email, name=email, role=PlatformRole.MEMBER, password=PASSWORD
        )
    async with client_of(transport) as browser:
        login = ok(await browser.post("/v1/auth/login", json={"email": email, "password": PASSWORD}))
        made = await browser.post(
            "/v1/tokens", json={"name": "audit"}, headers={"X-CSRF-Token": login["csrf_token"]}
        )
        return str(ok(made, 201)["token"])


async def test_changes_and_refusals_are_recorded_and_read_by_admins_and_owners(
    database: Database, transport: httpx.ASGITransport
) -> None:
    owner_token = await person_token(database, transport, "owner@example.com")
    dev_token = await person_token(database, transport, "dev@example.com")
    async with (
        client_of(transport, Authorization=f"Bearer {TOKEN}") as admin,
        client_of(transport, Authorization=f"Bearer {owner_token}") as owner,
        client_of(transport, Authorization=f"Bearer {dev_token}") as dev,
    ):
        me = ok(await owner.get("/v1/auth/me"))
        project = ok(await owner.post("/v1/projects", json={"name": "shop"}), 201)  # its creator owns it
        dev_id = ok(await dev.get("/v1/auth/me"))["user"]["id"]
        ok(await owner.put(f"/v1/projects/{project['id']}/members/{dev_id}", json={"role": "viewer"}))
        service = ok(
            await owner.post(
                f"/v1/projects/{project['id']}/services",
                json={"name": "web", "image": "127.0.0.1:5000/a/b:1"},
            ),
            201,
        )
        refused = await dev.patch(f"/v1/services/{service['id']}", json={"replicas": 3})
        assert refused.status_code == 403
        other = ok(await admin.post("/v1/projects", json={"name": "other"}), 201)

        events = ok(await owner.get("/v1/audit", params={"project_id": project["id"]}))
        mine = [(e["actor"], e["action"], e["result"]) for e in reversed(events)]
        assert mine == [
            (f"user:{me['user']['id']} via token {me['token_id']}", "project.create", "ok"),
            (f"user:{me['user']['id']} via token {me['token_id']}", "member.set", "ok"),
            (f"user:{me['user']['id']} via token {me['token_id']}", "service.create", "ok"),
            (
                f"user:{dev_id} via token {ok(await dev.get('/v1/auth/me'))['token_id']}",
                "request.refused",
                "refused",
            ),
        ]
        assert all(e["project_id"] == project["id"] and e["address"] == "127.0.0.1" for e in events)
        assert events[0]["target"] == f"/v1/services/{service['id']}" and events[0]["detail"]["status"] == 403
        assert other["id"] not in {e["target"] for e in events}

        # Filters: by actor, by object, by time.
        by_dev = ok(await admin.get("/v1/audit", params={"by": events[0]["actor"]}))
        assert [e["action"] for e in by_dev] == ["request.refused"]
        on_service = ok(await admin.get("/v1/audit", params={"target": service["id"]}))
        assert [e["action"] for e in on_service] == ["service.create"]
        later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        assert ok(await admin.get("/v1/audit", params={"since": later})) == []
        assert len(ok(await admin.get("/v1/audit", params={"until": later, "limit": 2}))) == 2

        # Who may read: admins everything, owners their project's; viewers and outsiders not.
        assert (await owner.get("/v1/audit")).status_code == 403  # the whole log: admins only
        assert (await dev.get("/v1/audit", params={"project_id": project["id"]})).status_code == 403
        assert (await owner.get("/v1/audit", params={"project_id": other["id"]})).status_code == 404
