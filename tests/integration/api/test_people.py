"""People over the real API (in process), on SQLite and PostgreSQL, with sessions in a real Redis: the
first admin, login and logout, the session cookie and CSRF, idle and absolute expiry, revocation, login
rate limits, invitations and personal tokens."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from core.db import Database
from core.models import ApiToken, AuditEvent, Invitation, User, utcnow
from core.settings import Settings
from domain.users import FIRST_ADMIN_EMAIL, FIRST_ADMIN_PASSWORD_FILE, ensure_first_admin
from tests.support.api import TOKEN, api_settings, api_transport, client_of
from tests.support.redis_server import RedisServer
from tests.support.registry import free_port

PASSWORD = "correct horse battery"


def settings_for(database: Database, tmp_path: Path, redis_server: RedisServer, **changes: Any) -> Settings:
    settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")  # no Temporal needed
    return settings.model_copy(
        update={
            "redis_url": redis_server.url,
            "login_failures_per_user": 3,
            "login_failures_per_address": 5,
            "login_failure_window_seconds": 60.0,
        }
        | changes
    )


@pytest.fixture
async def redis_clean(redis_server: RedisServer) -> RedisServer:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url)
    await client.flushdb()  # each test's login counters start at zero
    await client.aclose()
    return redis_server


@pytest.fixture
async def transport(
    database: Database, tmp_path: Path, redis_clean: RedisServer
) -> AsyncIterator[httpx.ASGITransport]:
    async with api_transport(settings_for(database, tmp_path, redis_clean)) as running:
        yield running


@pytest.fixture
async def admin(transport: httpx.ASGITransport) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(transport, Authorization=f"Bearer {TOKEN}") as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def new_person(admin: httpx.AsyncClient, email: str, role: str = "member") -> dict[str, Any]:
    body = {"email": email, "name": email.split("@")[0], "role": role, "password": PASSWORD}
    return ok(await admin.post("/v1/users", json=body), 201)  # type: ignore[no-any-return]


@asynccontextmanager
async def logged_in(
    transport: httpx.ASGITransport, email: str, password: str = PASSWORD
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser: logged in, its cookies kept, its writes carrying the CSRF token."""
    async with client_of(transport) as client:
        answer = ok(await client.post("/v1/auth/login", json={"email": email, "password": password}))
        client.headers["X-CSRF-Token"] = answer["csrf_token"]
        yield client


# --- the first admin ---------------------------------------------------------------------------------


async def test_the_first_admin_logs_in_with_the_one_time_password_and_must_change_it(
    transport: httpx.ASGITransport, tmp_path: Path
) -> None:
    password_file = tmp_path / FIRST_ADMIN_PASSWORD_FILE
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    generated = password_file.read_text().strip()

    async with logged_in(transport, FIRST_ADMIN_EMAIL, generated) as browser:
        me = ok(await browser.get("/v1/auth/me"))
        assert me["user"]["password_change_required"] is True and me["role"] == "admin"
        refused = await browser.get("/v1/projects")
        assert refused.status_code == 403 and "change your password" in refused.json()["detail"]

        short = await browser.post(
            "/v1/auth/password", json={"current_password": generated, "new_password": "short"}
        )
        assert short.status_code == 422 and short.json()["errors"][0]["field"] == "new_password"
        wrong = await browser.post(
            "/v1/auth/password", json={"current_password": "nope", "new_password": PASSWORD}
        )
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "current_password"
        ok(
            await browser.post(
                "/v1/auth/password", json={"current_password": generated, "new_password": PASSWORD}
            ),
            204,
        )
        ok(await browser.get("/v1/projects"))

    async with logged_in(transport, FIRST_ADMIN_EMAIL) as again:
        assert ok(await again.get("/v1/auth/me"))["user"]["password_change_required"] is False


async def test_an_installation_with_people_gets_no_second_first_admin(
    database: Database, tmp_path: Path, redis_clean: RedisServer
) -> None:
    async with api_transport(settings_for(database, tmp_path, redis_clean)):
        pass
    (tmp_path / FIRST_ADMIN_PASSWORD_FILE).unlink()
    async with api_transport(settings_for(database, tmp_path, redis_clean)):
        pass
    assert not (tmp_path / FIRST_ADMIN_PASSWORD_FILE).exists()
    async with database.session() as session:
        assert [u.email for u in await session.scalars(select(User))] == [FIRST_ADMIN_EMAIL]


# --- sessions ----------------------------------------------------------------------------------------


async def test_login_sets_an_httponly_lax_cookie_and_writes_need_the_csrf_token(
    transport: httpx.ASGITransport, admin: httpx.AsyncClient
) -> None:
    await new_person(admin, "ada@example.com", role="admin")
    async with client_of(transport) as browser:
        response = await browser.post(
            "/v1/auth/login", json={"email": "Ada@Example.com ", "password": PASSWORD}
        )
        answer = ok(response)
        cookies = response.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("dockyard_session="))
        assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
        assert "Secure" not in session_cookie  # plain HTTP here: a Secure cookie would never come back
        assert answer["csrf_token"] not in session_cookie

        ok(await browser.get("/v1/projects"))  # reads need no CSRF token
        refused = await browser.post("/v1/projects", json={"name": "shop"})
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
        wrong = await browser.post("/v1/projects", json={"name": "shop"}, headers={"X-CSRF-Token": "guess"})
        assert wrong.status_code == 403
        created = await browser.post(
            "/v1/projects", json={"name": "shop"}, headers={"X-CSRF-Token": answer["csrf_token"]}
        )
        ok(created, 201)


async def test_logout_ends_the_session_for_good(
    transport: httpx.ASGITransport, admin: httpx.AsyncClient
) -> None:
    await new_person(admin, "bo@example.com")
    async with logged_in(transport, "bo@example.com") as browser:
        secret = browser.cookies["dockyard_session"]
        ok(await browser.post("/v1/auth/logout"), 204)
        assert "dockyard_session" not in browser.cookies
    async with client_of(transport) as replay:
        replay.cookies.set("dockyard_session", secret)
        response = await replay.get("/v1/auth/me")
    assert response.status_code == 401 and "session has ended" in response.json()["detail"]


async def test_a_session_ends_when_idle_and_at_its_maximum_age(
    database: Database, tmp_path: Path, redis_clean: RedisServer
) -> None:
    idle = settings_for(database, tmp_path, redis_clean, session_idle_seconds=1.0, session_max_seconds=60.0)
    async with api_transport(idle) as transport:
        async with client_of(transport, Authorization=f"Bearer {TOKEN}") as admin:
            await new_person(admin, "cy@example.com")
        async with logged_in(transport, "cy@example.com") as browser:
            ok(await browser.get("/v1/auth/me"))
            await asyncio.sleep(2.2)
            assert (await browser.get("/v1/auth/me")).status_code == 401

    capped = settings_for(database, tmp_path, redis_clean, session_idle_seconds=60.0, session_max_seconds=2.0)
    async with api_transport(capped) as transport, logged_in(transport, "cy@example.com") as browser:
        # In use all along (each request pushes the idle expiry back), it still ends at its maximum age.
        statuses = []
        for _ in range(10):
            statuses.append((await browser.get("/v1/auth/me")).status_code)
            await asyncio.sleep(0.3)
        assert statuses[0] == 200 and statuses[-1] == 401
        assert statuses == sorted(statuses)  # 200s, then 401s: never back


async def test_a_person_lists_and_ends_their_sessions_and_an_admin_disabling_them_ends_all(
    transport: httpx.ASGITransport, admin: httpx.AsyncClient
) -> None:
    person = await new_person(admin, "di@example.com")
    async with (
        logged_in(transport, "di@example.com") as laptop,
        logged_in(transport, "di@example.com") as phone,
    ):
        await _end_sessions(transport, admin, person, laptop, phone)


async def _end_sessions(
    transport: httpx.ASGITransport,
    admin: httpx.AsyncClient,
    person: dict[str, Any],
    laptop: httpx.AsyncClient,
    phone: httpx.AsyncClient,
) -> None:
    listed = ok(await laptop.get("/v1/auth/sessions"))
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    other = next(s for s in listed if not s["current"])
    ok(await laptop.delete(f"/v1/auth/sessions/{other['id']}"), 204)
    assert (await phone.get("/v1/auth/me")).status_code == 401
    ok(await laptop.get("/v1/auth/me"))

    token = ok(await laptop.post("/v1/tokens", json={"name": "ci"}), 201)["token"]
    ok(await admin.patch(f"/v1/users/{person['id']}", json={"disabled": True}))
    assert (await laptop.get("/v1/auth/me")).status_code == 401
    async with client_of(transport, Authorization=f"Bearer {token}") as program:
        assert (await program.get("/v1/auth/me")).status_code == 401
    refused = await transport_login(transport, "di@example.com")
    assert refused.status_code == 401


async def transport_login(
    transport: httpx.ASGITransport, email: str, password: str = PASSWORD
) -> httpx.Response:
    async with client_of(transport) as client:
        return await client.post("/v1/auth/login", json={"email": email, "password": password})


# --- login rate limits -------------------------------------------------------------------------------


async def test_failed_logins_are_refused_alike_then_rate_limited_per_account_and_per_address(
    transport: httpx.ASGITransport, admin: httpx.AsyncClient
) -> None:
    await new_person(admin, "ed@example.com")
    unknown = await transport_login(transport, "nobody@example.com", "whatever-long")
    wrong = await transport_login(transport, "ed@example.com", "wrong password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"] == "wrong email or password"

    for _ in range(2):  # three failures for ed@ in all
        assert (await transport_login(transport, "ed@example.com", "wrong password")).status_code == 401
    limited = await transport_login(transport, "ed@example.com")  # even the right password, now
    assert limited.status_code == 429 and "this account" in limited.json()["detail"]
    assert 0 < int(limited.headers["Retry-After"]) <= 60

    # Five failures from this address in all (two more, for other accounts): the address is limited too.
    await new_person(admin, "fay@example.com")
    assert (await transport_login(transport, "fay@example.com", "wrong password")).status_code == 401
    limited = await transport_login(transport, "fay@example.com")
    assert limited.status_code == 429 and "your address" in limited.json()["detail"]


# --- invitations -------------------------------------------------------------------------------------


async def test_an_invitation_creates_one_account_once_and_expires(
    transport: httpx.ASGITransport, admin: httpx.AsyncClient, database: Database
) -> None:
    project = ok(await admin.post("/v1/projects", json={"name": "shop"}), 201)
    invitation = ok(
        await admin.post(
            "/v1/invitations",
            json={"email": "gus@example.com", "project_id": project["id"], "project_role": "viewer"},
        ),
        201,
    )
    assert invitation["token"] in invitation["url"]
    async with client_of(transport) as stranger:
        body = {"token": invitation["token"], "name": "Gus", "password": PASSWORD}
        user = ok(await stranger.post("/v1/invitations/accept", json=body), 201)
        assert user["email"] == "gus@example.com" and user["role"] == "member"
        again = await stranger.post("/v1/invitations/accept", json=body)
        assert again.status_code == 401 and "used already" in again.json()["detail"]
    async with logged_in(transport, "gus@example.com") as browser:
        ok(await browser.get("/v1/auth/me"))

    late = ok(await admin.post("/v1/invitations", json={"email": "hal@example.com"}), 201)
    async with database.transaction() as session:
        await session.execute(
            update(Invitation)
            .where(Invitation.id == late["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    async with client_of(transport) as stranger:
        expired = await stranger.post(
            "/v1/invitations/accept", json={"token": late["token"], "name": "Hal", "password": PASSWORD}
        )
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    taken = await admin.post("/v1/invitations", json={"email": "GUS@example.com"})
    assert taken.status_code == 409


async def test_only_an_admin_manages_people(transport: httpx.ASGITransport, admin: httpx.AsyncClient) -> None:
    await new_person(admin, "ivy@example.com")
    async with logged_in(transport, "ivy@example.com") as member:
        for method, path, body in (
            ("GET", "/v1/users", None),
            ("POST", "/v1/users", {"email": "x@example.com", "name": "x", "password": PASSWORD}),
            ("POST", "/v1/invitations", {"email": "x@example.com"}),
        ):
            response = await member.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)


async def test_an_admin_asking_for_a_project_that_does_not_exist_is_told_so(admin: httpx.AsyncClient) -> None:
    """Admins own every project, of the projects that exist: a deploy token, members or the audit of an
    unknown project are a 404, not a half-made row."""
    for method, path, body in (
        ("POST", "/v1/projects/prj_none/deploy-tokens", {"name": "ci"}),
        ("GET", "/v1/projects/prj_none/deploy-tokens", None),
        ("GET", "/v1/projects/prj_none/members", None),
    ):
        response = await admin.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"] == "project 'prj_none' not found"


# --- personal tokens ---------------------------------------------------------------------------------


async def test_a_personal_token_is_shown_once_acts_as_its_person_and_stops_when_revoked_or_expired(
    transport: httpx.ASGITransport, admin: httpx.AsyncClient, database: Database
) -> None:
    person = await new_person(admin, "jo@example.com")
    async with logged_in(transport, "jo@example.com") as browser:
        created = ok(await browser.post("/v1/tokens", json={"name": "laptop", "expires_in_days": 30}), 201)
        secret = created["token"]
        assert secret.startswith("dyp_") and created["prefix"] == secret[:8]
        listed = ok(await browser.get("/v1/tokens"))
        assert [t["name"] for t in listed] == ["laptop"] and "token" not in listed[0]
        assert secret not in (await browser.get("/v1/tokens")).text

        async with client_of(transport, Authorization=f"Bearer {secret}") as program:
            me = ok(await program.get("/v1/auth/me"))
            assert me["user"]["id"] == person["id"] and me["token_id"] == created["id"]
            ok(await program.post("/v1/projects", json={"name": "jo-shop"}), 201)  # no CSRF: not a cookie
        async with database.session() as session:
            row = await session.get(ApiToken, created["id"])
            assert row is not None and row.last_used_at is not None and secret not in row.token_hash
            events = list(
                await session.scalars(select(AuditEvent).where(AuditEvent.action == "project.create"))
            )
            assert events[-1].actor == f"user:{person['id']} via token {created['id']}"

        ok(await browser.delete(f"/v1/tokens/{created['id']}"))
        async with client_of(transport, Authorization=f"Bearer {secret}") as program:
            revoked = await program.get("/v1/auth/me")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]

        short = ok(await browser.post("/v1/tokens", json={"name": "short"}), 201)
    async with database.transaction() as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.id == short["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    async with client_of(transport, Authorization=f"Bearer {short['token']}") as program:
        expired = await program.get("/v1/auth/me")
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


async def test_logout_with_a_personal_token_revokes_it_and_the_bootstrap_token_keeps_working(
    transport: httpx.ASGITransport, admin: httpx.AsyncClient
) -> None:
    await new_person(admin, "kit@example.com")
    async with logged_in(transport, "kit@example.com") as browser:
        secret = ok(await browser.post("/v1/tokens", json={"name": "cli"}), 201)["token"]
    async with client_of(transport, Authorization=f"Bearer {secret}") as cli:
        ok(await cli.post("/v1/auth/logout"), 204)
        assert (await cli.get("/v1/auth/me")).status_code == 401
    me = ok(await admin.get("/v1/auth/me"))
    assert me["kind"] == "bootstrap" and me["role"] == "admin" and me["label"] == "admin"
    assert (await admin.post("/v1/auth/logout")).status_code == 409


async def test_requests_without_a_credential_are_told_how_to_authenticate(
    transport: httpx.ASGITransport,
) -> None:
    async with client_of(transport) as stranger:
        response = await stranger.get("/v1/projects")
        assert response.status_code == 401 and "log in" in response.json()["detail"]
        assert response.headers["WWW-Authenticate"] == "Bearer"
        bogus = await stranger.get("/v1/projects", headers={"Authorization": "Bearer dyp_not-a-token"})
        assert bogus.status_code == 401 and bogus.json()["detail"] == "unknown API token"


async def test_two_api_processes_starting_at_once_make_one_first_admin(
    database: Database, tmp_path: Path
) -> None:
    async def start(name: str) -> Path | None:
        state_dir = tmp_path / name
        state_dir.mkdir()
        async with database.session() as session:
            return await ensure_first_admin(session, state_dir)

    made = await asyncio.gather(start("a"), start("b"))
    assert len([path for path in made if path is not None]) == 1
    async with database.session() as session:
        assert [u.email for u in await session.scalars(select(User))] == [FIRST_ADMIN_EMAIL]
