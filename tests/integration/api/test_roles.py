"""Every route, for every kind of caller: allowed, or refused the way the table says (401 without a
credential, 403 for a role that may not, 404 where a project's existence must not leak).

The table names every route of the API; a route added without an entry fails
`test_every_route_is_in_the_table`. Each request is made with fresh credentials and fresh objects where
it would use them up (a logout, a revoked token, a removed member), so the order of the rows is free.
"""

from __future__ import annotations

import gzip
import io
import itertools
import tarfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute

from api.main import create_app
from core.db import Database
from core.models import Deployment, Membership, Variable, new_id, utcnow
from core.secrets import secret_box
from core.settings import Settings
from domain import members, sessions, tokens
from domain.actors import BOOTSTRAP, SERVICE_ROUTES, Actor, ActorKind, PlatformRole
from domain.authentication import NO_CREDENTIAL
from domain.authorization import Permission
from domain.users import create_user
from tests.support.api import TOKEN, api_settings, api_transport, client_of
from tests.support.redis_server import RedisServer
from tests.support.registry import free_port

PASSWORD = "a password for the matrix"
ALLOWED = "allowed"
ROLES = (
    "anonymous",
    "bootstrap",
    "admin",
    "owner",
    "developer",
    "viewer",
    "outsider",
    "deploy-token",
    "deploy-token-elsewhere",
    "traefik",
    "builder",
    "prometheus",
)
SERVICES = ("traefik", "builder", "prometheus")
SERVICE_TOKENS = {
    "traefik": "traefik-identity-secret",
    "builder": "builder-identity-secret",
    "prometheus": "prometheus-identity-secret",
}
PEOPLE = ("admin", "owner", "developer", "viewer", "outsider")


# --- who may: the rules ------------------------------------------------------------------------------

# What a project's developer and viewer may do, as the product says (written out here, not imported: the
# test checks domain/authorization.py's table, it does not repeat it).
MAY = {
    "developer": {
        Permission.READ,
        Permission.DEPLOY,
        Permission.CONFIGURE,
        Permission.READ_SECRETS,
        Permission.WRITE_VARIABLES,
    },
    "viewer": {Permission.READ},
}

Expectation = Callable[[str], "str | int"]


def public(_: str) -> str | int:
    """No credential needed (the request itself carries its proof, or there is nothing to protect)."""
    return ALLOWED


def anyone(role: str) -> str | int:
    return 401 if role == "anonymous" else ALLOWED


def people_only(role: str) -> str | int:
    """A person's own things (their password, sessions, personal tokens)."""
    if role == "anonymous":
        return 401
    return ALLOWED if role in PEOPLE else 403


def admin(role: str) -> str | int:
    if role == "anonymous":
        return 401
    return ALLOWED if role in ("bootstrap", "admin") else 403


def create_project(role: str) -> str | int:
    if role == "anonymous":
        return 401
    return 403 if role.startswith("deploy-token") else ALLOWED


def project(permission: Permission) -> Expectation:
    def expect(role: str) -> str | int:
        if role == "anonymous":
            return 401
        if role in ("bootstrap", "admin", "owner"):
            return ALLOWED
        if role in ("outsider", "deploy-token-elsewhere"):
            return 404
        if role == "deploy-token":
            return ALLOWED if permission in (Permission.READ, Permission.DEPLOY) else 403
        return ALLOWED if permission in MAY[role] else 403

    expect.__name__ = f"project({permission})"
    return expect


def revoke_own_token(role: str) -> str | int:
    """A person revokes their own token, an admin anyone's; others do not see it."""
    if role == "anonymous":
        return 401
    return ALLOWED if role in (*PEOPLE, "bootstrap") else 404


def logout(role: str) -> str | int:
    """Sessions and personal tokens log out; the bootstrap and deploy tokens are revoked otherwise."""
    if role == "anonymous":
        return 401
    return ALLOWED if role in PEOPLE else 409


@dataclass(frozen=True)
class Row:
    expect: Expectation
    body: Any = None
    content: bytes | None = None
    # Path parameters filled with an object made for the request (one it may use up): a personal
    # token, a project member, a deploy token, a session, a variable.
    fresh: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def tarball() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = b"print('hi')\n"
        info = tarfile.TarInfo("main.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


_unique = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_unique)}"


# The placeholders in paths ({project_id}, {fresh_token_id}, ...) are filled per request by `World`.
TABLE: dict[tuple[str, str], Row] = {
    # documentation and health
    ("GET", "/openapi.json"): Row(public),
    ("GET", "/docs"): Row(public),
    ("GET", "/docs/oauth2-redirect"): Row(public),
    ("GET", "/redoc"): Row(public),
    ("GET", "/healthz"): Row(public),
    # people
    ("POST", "/v1/auth/login"): Row(public, body={"email": "guest@example.com", "password": PASSWORD}),
    ("POST", "/v1/auth/logout"): Row(logout),
    ("GET", "/v1/auth/me"): Row(anyone),
    ("POST", "/v1/auth/password"): Row(
        people_only, body={"current_password": "not it at all", "new_password": "another long one"}
    ),
    ("GET", "/v1/auth/sessions"): Row(anyone),
    ("DELETE", "/v1/auth/sessions/{session_id}"): Row(people_only, fresh={"session_id": "session"}),
    ("GET", "/v1/users"): Row(admin),
    ("POST", "/v1/users"): Row(
        admin, body=lambda: {"email": f"{unique('u')}@example.com", "name": "U", "password": PASSWORD}
    ),
    ("GET", "/v1/users/{user_id}"): Row(admin),
    ("PATCH", "/v1/users/{user_id}"): Row(admin, body={"name": "Guest"}),
    ("DELETE", "/v1/users/{user_id}/sessions"): Row(admin),
    ("POST", "/v1/invitations"): Row(admin, body=lambda: {"email": f"{unique('i')}@example.com"}),
    ("POST", "/v1/invitations/accept"): Row(
        public, body={"token": "dyi_unknown", "name": "X", "password": PASSWORD}
    ),
    ("GET", "/v1/tokens"): Row(people_only),
    ("POST", "/v1/tokens"): Row(people_only, body={"name": "matrix"}),
    ("DELETE", "/v1/tokens/{token_id}"): Row(revoke_own_token, fresh={"token_id": "personal token"}),
    # projects
    ("GET", "/v1/projects"): Row(anyone),
    ("POST", "/v1/projects"): Row(create_project, body=lambda: {"name": unique("p")}),
    ("GET", "/v1/projects/{project_id}"): Row(project(Permission.READ)),
    ("PATCH", "/v1/projects/{project_id}"): Row(
        project(Permission.CONFIGURE), body={"previews_enabled": False}
    ),
    ("GET", "/v1/projects/{project_id}/environments"): Row(project(Permission.READ)),
    ("POST", "/v1/projects/{project_id}/environments"): Row(
        project(Permission.CONFIGURE), body=lambda: {"name": unique("e")}
    ),
    ("GET", "/v1/projects/{project_id}/members"): Row(project(Permission.READ)),
    ("PUT", "/v1/projects/{project_id}/members/{user_id}"): Row(
        project(Permission.MANAGE), body={"role": "viewer"}
    ),
    ("DELETE", "/v1/projects/{project_id}/members/{user_id}"): Row(
        project(Permission.MANAGE), fresh={"user_id": "member"}
    ),
    ("GET", "/v1/projects/{project_id}/deploy-tokens"): Row(project(Permission.MANAGE)),
    ("POST", "/v1/projects/{project_id}/deploy-tokens"): Row(project(Permission.MANAGE), body={"name": "ci"}),
    ("DELETE", "/v1/projects/{project_id}/deploy-tokens/{token_id}"): Row(
        project(Permission.MANAGE), fresh={"token_id": "deploy token"}
    ),
    ("GET", "/v1/projects/{project_id}/webhook"): Row(project(Permission.READ_SECRETS)),
    ("POST", "/v1/projects/{project_id}/webhook/rotate"): Row(project(Permission.CONFIGURE)),
    ("GET", "/v1/projects/{project_id}/webhook-deliveries"): Row(project(Permission.READ)),
    ("POST", "/v1/webhooks/{provider}/{project_id}"): Row(public, body={"zen": "hi"}),
    # services
    ("GET", "/v1/projects/{project_id}/services"): Row(project(Permission.READ)),
    ("POST", "/v1/projects/{project_id}/services"): Row(
        project(Permission.CONFIGURE), body=lambda: {"name": unique("s"), "image": "127.0.0.1:5000/a/b:1"}
    ),
    ("GET", "/v1/services/{service_id}"): Row(project(Permission.READ)),
    ("PATCH", "/v1/services/{service_id}"): Row(project(Permission.CONFIGURE), body={"replicas": 1}),
    ("GET", "/v1/services/{service_id}/url"): Row(project(Permission.READ)),
    ("GET", "/v1/services/{service_id}/variables"): Row(project(Permission.READ_SECRETS)),
    ("PUT", "/v1/services/{service_id}/variables"): Row(
        project(Permission.WRITE_VARIABLES), body={"variables": {"A": "1"}}
    ),
    ("DELETE", "/v1/services/{service_id}/variables/{name}"): Row(
        project(Permission.WRITE_VARIABLES), fresh={"name": "variable"}
    ),
    # deployments (Temporal is down here: an allowed deploy is recorded and answered 503)
    ("POST", "/v1/services/{service_id}/deployments"): Row(project(Permission.DEPLOY), body={}),
    ("GET", "/v1/services/{service_id}/deployments"): Row(project(Permission.READ)),
    ("POST", "/v1/services/{service_id}/deployments/upload"): Row(
        project(Permission.DEPLOY), content=tarball()
    ),
    ("POST", "/v1/services/{service_id}/rollback"): Row(
        project(Permission.DEPLOY), body={"deployment_id": "{deployment_id}"}
    ),
    ("POST", "/v1/services/{service_id}/scale"): Row(project(Permission.DEPLOY), body={"replicas": 2}),
    ("GET", "/v1/deployments/{deployment_id}"): Row(project(Permission.READ)),
    ("GET", "/v1/deployments/{deployment_id}/build-logs"): Row(project(Permission.READ)),
    # autoscaling (no Temporal here: an allowed PUT saves the policy and is answered 503)
    ("PUT", "/v1/services/{service_id}/autoscaling"): Row(
        project(Permission.CONFIGURE),
        body={"min_replicas": 1, "max_replicas": 3, "targets": {"cpu_percent": 60}},
    ),
    ("GET", "/v1/services/{service_id}/autoscaling"): Row(project(Permission.READ)),
    ("DELETE", "/v1/services/{service_id}/autoscaling"): Row(project(Permission.CONFIGURE)),
    ("GET", "/v1/services/{service_id}/scaling-events"): Row(project(Permission.READ)),
    # metrics (no Prometheus here: an allowed read is answered 503)
    ("GET", "/v1/services/{service_id}/metrics"): Row(project(Permission.READ), params={"metric": "cpu"}),
    ("GET", "/v1/nodes/{node_id}/metrics"): Row(admin, params={"metric": "load"}),
    # runtime logs (no replicas here: an allowed read answers no lines)
    ("GET", "/v1/services/{service_id}/logs"): Row(project(Permission.READ)),
    # the audit log: a project's owners read their project's
    ("GET", "/v1/audit"): Row(project(Permission.MANAGE), params={"project_id": "{project_id}"}),
    # Temporal's payload codec, for the Web UI (no payload key here: an allowed call is answered 503)
    ("POST", "/v1/codec/encode"): Row(admin, body={"payloads": []}),
    ("POST", "/v1/codec/decode"): Row(admin, body={"payloads": []}),
    # the control plane's own
    ("GET", "/internal/sources/{upload_id}"): Row(admin),
    ("GET", "/internal/services/{service_id}/repo-credential"): Row(admin),
    ("GET", "/internal/traefik/config"): Row(admin),
    ("GET", "/internal/prometheus/targets"): Row(admin),
    # nodes and pools
    ("POST", "/v1/nodes/join-tokens"): Row(admin, body={}),
    ("POST", "/v1/nodes/enroll"): Row(
        public, body={"token": "dyj_unknown", "name": "n", "address": "127.0.0.1:1", "csr": "x"}
    ),
    ("GET", "/v1/nodes"): Row(admin),
    ("GET", "/v1/nodes/{node_id}"): Row(admin),
    ("DELETE", "/v1/nodes/{node_id}"): Row(admin),
    ("POST", "/v1/nodes/{node_id}/cordon"): Row(admin),
    ("POST", "/v1/nodes/{node_id}/uncordon"): Row(admin),
    ("POST", "/v1/nodes/{node_id}/drain"): Row(admin),
    ("POST", "/v1/node-pools"): Row(admin, body={}),
    ("GET", "/v1/node-pools"): Row(admin),
    ("GET", "/v1/node-pools/{pool_id}"): Row(admin),
    ("PATCH", "/v1/node-pools/{pool_id}"): Row(admin, body={}),
    ("DELETE", "/v1/node-pools/{pool_id}"): Row(admin),
    ("POST", "/v1/node-pools/{pool_id}/nodes/{node_id}/decommission"): Row(admin),
}


def served_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Every route the app answers, the included routers' routes too (with their prefixes)."""
    found: list[BaseRoute] = []
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)  # an included router, as FastAPI keeps it
        found.extend(served_routes(list(candidates())) if callable(candidates) else [route])
    return found


def test_every_route_is_in_the_table(tmp_path: Path) -> None:
    settings = Settings(
        api_token="t", state_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/d.db"
    )
    routes = {
        (method, route.path)
        for route in served_routes(create_app(settings).routes)
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }
    assert len(routes) > 60  # the walk found the routers' routes
    assert routes - set(TABLE) == set(), "a route without a rule in TABLE"
    assert set(TABLE) - routes == set(), "a rule for a route that does not exist"


# --- the world the requests are made in ---------------------------------------------------------------


@dataclass
class World:
    database: Database
    settings: Settings
    redis_url: str
    ids: dict[str, str] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)  # role → user id

    def actor(self, role: str) -> Actor:
        if role in PEOPLE:
            return Actor(
                ActorKind.USER,
                f"user:{self.people[role]}",
                role=PlatformRole.ADMIN if role == "admin" else PlatformRole.MEMBER,
                user_id=self.people[role],
            )
        return BOOTSTRAP

    async def credential(self, session: AsyncSession, role: str) -> dict[str, str]:
        """Fresh for every request: a request may use it up (a logout)."""
        if role == "anonymous":
            return {}
        if role == "bootstrap":
            return {"Authorization": f"Bearer {TOKEN}"}
        if role in SERVICES:
            return {"Authorization": f"Bearer {SERVICE_TOKENS[role]}"}
        if role.startswith("deploy-token"):
            project_id = self.ids["project_id"] if role == "deploy-token" else self.ids["other_project_id"]
            secret, _ = await members.create_deploy_token(
                session, BOOTSTRAP, project_id, name="matrix", expires_in_days=None
            )
            return {"Authorization": f"Bearer {secret}"}
        secret, _ = await tokens.create_personal_token(
            session, self.actor(role), name="matrix", expires_in_days=None
        )
        return {"Authorization": f"Bearer {secret}"}

    async def fill(self, session: AsyncSession, role: str, template: str, fresh: dict[str, str]) -> str:
        """The path with its placeholders: the world's objects, or fresh ones made for this request."""
        values = dict(self.ids, provider="github")
        for name, kind in fresh.items():
            values[name] = await self._make(session, role, kind)
        return template.format(**values)

    async def _make(self, session: AsyncSession, role: str, kind: str) -> str:
        if kind == "personal token":  # the caller's own, if the caller is a person
            owner = self.actor(role) if role in PEOPLE else self.actor("owner")
            _, token = await tokens.create_personal_token(
                session, owner, name="to revoke", expires_in_days=None
            )
            return token.id
        if kind == "member":
            user = await create_user(
                session,
                BOOTSTRAP,
                email=f"{unique('m')}@example.com",
                name="M",
                role=PlatformRole.MEMBER,
                password=PASSWORD,
            )
            session.add(
                Membership(
                    project_id=self.ids["project_id"], user_id=user.id, role="developer", created_at=utcnow()
                )
            )
            await session.commit()
            return user.id
        if kind == "deploy token":
            _, token = await members.create_deploy_token(
                session, BOOTSTRAP, self.ids["project_id"], name="to revoke", expires_in_days=None
            )
            return token.id
        if kind == "session":  # the caller's own
            redis = Redis.from_url(self.redis_url)
            try:
                _, info = await sessions.open_session(
                    redis, self.settings, self.people.get(role, self.people["owner"]), "127.0.0.1"
                )
            finally:
                await redis.aclose()
            return info.id
        assert kind == "variable", kind
        name = unique("V").replace("-", "_")
        session.add(
            Variable(
                service_id=self.ids["service_id"],
                environment_id=self.ids["environment_id"],
                name=name,
                value=secret_box(self.settings).encrypt("x"),
            )
        )
        await session.commit()
        return name


async def build_world(
    database: Database, settings: Settings, redis_url: str, admin: httpx.AsyncClient
) -> World:
    world = World(database, settings, redis_url)
    project = (await admin.post("/v1/projects", json={"name": "shop"})).json()
    other = (await admin.post("/v1/projects", json={"name": "other"})).json()
    service = (
        await admin.post(
            f"/v1/projects/{project['id']}/services",
            json={"name": "web", "image": "127.0.0.1:5000/shop/web:1"},
        )
    ).json()
    environment = (await admin.get(f"/v1/projects/{project['id']}/environments")).json()[0]
    async with database.session() as session:
        for role in PEOPLE:
            user = await create_user(
                session,
                BOOTSTRAP,
                email=f"{role}@example.com",
                name=role,
                role=PlatformRole.ADMIN if role == "admin" else PlatformRole.MEMBER,
                password=PASSWORD,
            )
            world.people[role] = user.id
            if role in ("owner", "developer", "viewer"):
                session.add(
                    Membership(project_id=project["id"], user_id=user.id, role=role, created_at=utcnow())
                )
        guest = await create_user(
            session,
            BOOTSTRAP,
            email="guest@example.com",
            name="guest",
            role=PlatformRole.MEMBER,
            password=PASSWORD,
        )
        deployment_id = new_id("dep")
        session.add(
            Deployment(
                id=deployment_id,
                service_id=service["id"],
                environment_id=environment["id"],
                status="FAILED",
                source={"kind": "image"},
                config={"port": 8080, "replicas": 1},
                workflow_id="deploy/none",
            )
        )
        await session.commit()
    world.ids = {
        "project_id": project["id"],
        "other_project_id": other["id"],
        "service_id": service["id"],
        "environment_id": environment["id"],
        "deployment_id": deployment_id,
        "user_id": guest.id,
        "upload_id": "upl_none",
        "node_id": "node_none",
        "pool_id": "pool_none",
    }
    return world


@pytest.fixture
async def world(
    database: Database, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[World, httpx.ASGITransport]]:
    settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}").model_copy(
        update={
            "redis_url": redis_server.url,
            "login_failures_per_address": 1000,
            "login_failures_per_user": 1000,
            "traefik_token": SecretStr(SERVICE_TOKENS["traefik"]),
            "builder_token": SecretStr(SERVICE_TOKENS["builder"]),
            "prometheus_token": SecretStr(SERVICE_TOKENS["prometheus"]),
            "prometheus_url": f"http://127.0.0.1:{free_port()}",
        }
    )
    async with (
        api_transport(settings) as transport,
        client_of(transport, Authorization=f"Bearer {TOKEN}") as admin,
    ):
        yield await build_world(database, settings, redis_server.url, admin), transport


def expectation(row: Row, role: str, method: str, template: str) -> str | int:
    """A service identity may call its own routes (and the public ones), nothing else: 403."""
    if role in SERVICES and row.expect is not public:
        return ALLOWED if (method, template) in SERVICE_ROUTES[role] else 403
    return row.expect(role)


# What a caller who may not see it is told is not found.
HIDDEN = ("project", "service", "deployment", "environment", "token")


def outcome(response: httpx.Response) -> str | int:
    """What the request met: refused (401 for want of a credential, 403, or the 404 that hides a
    project), or allowed (anything else: the operation ran, or failed for its own reasons)."""
    if response.status_code == 401:
        detail = response.json().get("detail", "")
        return 401 if detail == NO_CREDENTIAL else ALLOWED  # a wrong join token, signature, password...
    if response.status_code == 403:
        return 403
    if response.status_code == 404:
        detail = response.json().get("detail", "")
        hidden = any(detail.startswith(f"{kind} '") for kind in HIDDEN)
        return 404 if hidden else ALLOWED
    if response.status_code == 409 and "cannot log out" in response.text:
        return 409
    return ALLOWED


async def test_every_route_answers_every_caller_as_the_table_says(
    world: tuple[World, httpx.ASGITransport],
) -> None:
    state, transport = world
    wrong = []
    for (method, template), row in TABLE.items():
        for role in ROLES:
            async with state.database.session() as session:
                headers = await state.credential(session, role)
                path = await state.fill(session, role, template, row.fresh)
            body = row.body() if callable(row.body) else row.body
            if isinstance(body, dict):
                body = {
                    k: (v.format(**state.ids) if isinstance(v, str) and "{" in v else v)
                    for k, v in body.items()
                }
            params = {key: value.format(**state.ids) for key, value in row.params.items()}
            async with client_of(transport, **headers) as client:
                client.params = httpx.QueryParams(params)
                if row.content is not None:
                    response = await client.request(
                        method, path, content=row.content, headers={"Content-Type": "application/gzip"}
                    )
                else:
                    response = await client.request(method, path, json=body)
            expected, got = expectation(row, role, method, template), outcome(response)
            if expected != got:
                wrong.append(
                    f"{method} {template} as {role}: expected {expected}, got {got} "
                    f"({response.status_code} {response.text[:120]})"
                )
    assert wrong == []
