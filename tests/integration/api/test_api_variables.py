"""Service variables per environment over the REST API, on both database backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from activities.agents import AgentActivities
from core.contracts import SourceSpec
from core.db import Database
from core.models import AuditEvent, Environment, Service, Variable
from core.replica_specs import replica_specs
from core.secrets import SecretBox
from domain.deployments import new_deployment, service_variables
from domain.variables import MAX_BASE_LEVELS, build_variables, effective_variables, invalid_variables
from tests.support.api import SECRET_KEY, api_settings, running_api
from tests.support.registry import free_port

IMAGE = "127.0.0.1:5000/acme/web:1"


@pytest.fixture
async def api(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def new_service(api: httpx.AsyncClient) -> dict[str, Any]:
    project = ok(await api.post("/v1/projects", json={"name": "shop"}), 201)
    return ok(
        await api.post(f"/v1/projects/{project['id']}/services", json={"name": "web", "image": IMAGE}), 201
    )


def variables_url(service: dict[str, Any], name: str = "") -> str:
    return f"/v1/services/{service['id']}/variables" + (f"/{name}" if name else "")


async def put(api: httpx.AsyncClient, service: dict[str, Any], changes: dict[str, Any], **params: str) -> Any:
    return ok(await api.put(variables_url(service), json={"variables": changes}, params=params))


async def add_environment(
    database: Database, project_id: str, name: str, base: str | None, pull_request: int | None = None
) -> str:
    async with database.transaction() as session:
        environment = Environment(
            project_id=project_id, name=name, base_environment_id=base, pull_request=pull_request
        )
        session.add(environment)
        await session.flush()
        return environment.id


async def environment_id(database: Database, project_id: str, name: str) -> str:
    async with database.session() as session:
        found = await session.scalar(
            select(Environment.id).where(Environment.project_id == project_id, Environment.name == name)
        )
        assert found is not None
        return found


# --- set, get, merge, delete -------------------------------------------------------------------------


async def test_set_merge_and_delete(api: httpx.AsyncClient) -> None:
    service = await new_service(api)
    empty = {"environment": "production", "variables": {}, "inherited": {}}
    assert ok(await api.get(variables_url(service))) == empty

    created = await put(api, service, {"DATABASE_URL": "postgres://db/shop", "DEBUG": "1"})
    assert created == empty | {"variables": {"DATABASE_URL": "postgres://db/shop", "DEBUG": "1"}}

    merged = await put(api, service, {"DEBUG": None, "WORKERS": "4", "DATABASE_URL": "postgres://db/shop2"})
    assert merged["variables"] == {"DATABASE_URL": "postgres://db/shop2", "WORKERS": "4"}
    assert ok(await api.get(variables_url(service), params={"environment": "production"})) == merged

    assert (await put(api, service, {"NEVER_SET": None}))["variables"] == merged["variables"]
    assert (await put(api, service, {}))["variables"] == merged["variables"]

    remaining = ok(await api.delete(variables_url(service, "WORKERS")))
    assert remaining["variables"] == {"DATABASE_URL": "postgres://db/shop2"}
    again = await api.delete(variables_url(service, "WORKERS"))
    assert again.status_code == 404
    assert again.json()["detail"] == "variable 'WORKERS' is not set in environment 'production'"


async def test_values_are_kept_as_given(api: httpx.AsyncClient) -> None:
    service = await new_service(api)
    values = {
        "EMPTY": "",
        "SPACES": "  a b  ",
        "MULTILINE": "line 1\nline 2\n",
        "UNICODE": "café ☕",
        "_x1": "=",
    }
    assert (await put(api, service, values))["variables"] == values


async def test_environments_are_separate(api: httpx.AsyncClient) -> None:
    service = await new_service(api)
    ok(await api.post(f"/v1/projects/{service['project_id']}/environments", json={"name": "staging"}), 201)
    await put(api, service, {"MODE": "live"})
    await put(api, service, {"MODE": "test"}, environment="staging")

    production = ok(await api.get(variables_url(service)))
    staging = ok(await api.get(variables_url(service), params={"environment": "staging"}))
    assert (production["variables"], staging["variables"]) == ({"MODE": "live"}, {"MODE": "test"})
    assert staging["environment"] == "staging"


async def test_unknown_service_or_environment_is_404(api: httpx.AsyncClient) -> None:
    service = await new_service(api)
    missing_service = await api.get("/v1/services/svc_missing/variables")
    assert (missing_service.status_code, missing_service.json()["detail"]) == (
        404,
        "service 'svc_missing' not found",
    )
    missing_environment = await api.put(
        variables_url(service), params={"environment": "qa"}, json={"variables": {"A": "1"}}
    )
    assert (missing_environment.status_code, missing_environment.json()["detail"]) == (
        404,
        "environment 'qa' not found",
    )


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        pytest.param("1ST", "s3cr3t", "not a valid variable name", id="leading-digit"),
        pytest.param("API-KEY", "s3cr3t", "not a valid variable name", id="dash"),
        pytest.param("A B", "s3cr3t", "not a valid variable name", id="space"),
        pytest.param("", "s3cr3t", "not a valid variable name", id="empty-name"),
        pytest.param("CAFÉ", "s3cr3t", "not a valid variable name", id="non-ascii"),
        pytest.param("A" * 256, "s3cr3t", "name longer than 255 characters", id="long-name"),
        pytest.param("PORT", "3000", "reserved: Dockyard sets it to the service's port", id="reserved-port"),
        pytest.param("PORT", None, "reserved: Dockyard sets it", id="reserved-even-to-delete"),
        pytest.param("BIG", "x" * (32 * 1024 + 1), "value is 32769 bytes; at most 32768", id="long-value"),
        pytest.param("WIDE", "é" * (16 * 1024 + 1), "value is 32770 bytes", id="long-in-utf8"),
        pytest.param("NUL", "a\0b", "control character U+0000", id="nul"),
    ],
)
async def test_invalid_changes_are_refused_by_name(
    api: httpx.AsyncClient, database: Database, name: str, value: str | None, reason: str
) -> None:
    service = await new_service(api)
    response = await api.put(variables_url(service), json={"variables": {"GOOD": "kept?", name: value}})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == f"variables.{name}"
    assert reason in error["reason"]
    assert response.json()["detail"] == f"variables.{name}: {error['reason']}"
    assert value is None or value not in response.text
    async with database.session() as session:
        assert list(await session.scalars(select(Variable.name))) == []


async def test_every_invalid_name_is_reported(api: httpx.AsyncClient) -> None:
    service = await new_service(api)
    response = await api.put(variables_url(service), json={"variables": {"PORT": "1", "OK": "1", "9": "1"}})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["variables.PORT", "variables.9"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"variables": {"A": 5}}, "variables.A", id="number-value"),
        pytest.param({"variables": ["A"]}, "variables", id="list"),
        pytest.param({}, "variables", id="missing"),
        pytest.param({"variables": {}, "environment": "x"}, "environment", id="unknown-field"),
    ],
)
async def test_malformed_bodies_name_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    service = await new_service(api)
    response = await api.put(variables_url(service), json=body)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        pytest.param({"A": "1", "_": None, "a_B9": "x"}, {}, id="valid"),
        pytest.param({"port": "1"}, {}, id="lowercase-port-is-not-reserved"),
        pytest.param({"A" * 255: "1"}, {}, id="longest-name"),
        pytest.param({"V": "x" * 32 * 1024}, {}, id="largest-value"),
        pytest.param({"A.B": "1"}, {"A.B": "not a valid variable name"}, id="dot"),
        pytest.param({"A\n": "1"}, {"A\n": "not a valid variable name"}, id="trailing-newline"),
    ],
)
def test_invalid_variables(changes: dict[str, str | None], problems: dict[str, str]) -> None:
    found = invalid_variables(changes)
    assert found.keys() == problems.keys()
    assert all(found[name].startswith(reason) for name, reason in problems.items())


# --- secrets at rest -----------------------------------------------------------------------------


async def test_values_are_stored_encrypted(api: httpx.AsyncClient, database: Database) -> None:
    service = await new_service(api)
    await put(api, service, {"STRIPE_KEY": "sk_live_plaintext"})
    async with database.session() as session:
        [row] = await session.scalars(select(Variable))
    assert (row.service_id, row.name) == (service["id"], "STRIPE_KEY")
    assert "sk_live_plaintext" not in row.value
    assert SecretBox(SECRET_KEY).decrypt(row.value) == "sk_live_plaintext"


async def test_audit_events_name_variables_never_values(api: httpx.AsyncClient, database: Database) -> None:
    service = await new_service(api)
    await put(api, service, {"SECRET_A": "value-a-123", "SECRET_B": "value-b-456"})
    await put(api, service, {"SECRET_A": None, "SECRET_B": "value-b-789"})
    ok(await api.delete(variables_url(service, "SECRET_B")))

    async with database.session() as session:
        events = list(await session.scalars(select(AuditEvent).where(AuditEvent.action.like("variables.%"))))
    assert [(e.action, e.target, e.detail) for e in events] == [
        (
            "variables.update",
            service["id"],
            {"environment": "production", "set": ["SECRET_A", "SECRET_B"], "deleted": []},
        ),
        (
            "variables.update",
            service["id"],
            {"environment": "production", "set": ["SECRET_B"], "deleted": ["SECRET_A"]},
        ),
        ("variables.delete", service["id"], {"environment": "production", "deleted": ["SECRET_B"]}),
    ]
    assert "value-" not in json.dumps([e.detail for e in events])


async def test_missing_secret_key_is_503_with_the_reason(database: Database, tmp_path: Path) -> None:
    settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")
    async with running_api(settings) as api:
        service = await new_service(api)
        await put(api, service, {"TOKEN": "t0ken"})
    async with running_api(settings.model_copy(update={"secret_key": None})) as keyless:
        for response in (
            await keyless.put(variables_url(service), json={"variables": {"OTHER": "x"}}),
            await keyless.get(variables_url(service)),
        ):
            assert response.status_code == 503
            assert response.json()["detail"] == (
                "the server cannot store secrets: "
                "DOCKYARD_SECRET_KEY is not set: secrets cannot be stored or read"
            )
    async with database.session() as session:
        assert list(await session.scalars(select(Variable.name))) == ["TOKEN"]


async def test_another_key_is_503_naming_the_variable(database: Database, tmp_path: Path) -> None:
    settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")
    async with running_api(settings) as api:
        service = await new_service(api)
        await put(api, service, {"TOKEN": "t0ken"})
    rekeyed = settings.model_copy(update={"secret_key": SecretStr(SecretBox.generate_key())})
    async with running_api(rekeyed) as api:
        response = await api.get(variables_url(service))
        assert response.status_code == 503
        assert response.json()["detail"].startswith("variables.TOKEN: secret cannot be decrypted")
        assert "t0ken" not in response.text


# --- inheritance ---------------------------------------------------------------------------------


async def test_preview_inherits_its_base_and_overrides(api: httpx.AsyncClient, database: Database) -> None:
    service = await new_service(api)
    production = await environment_id(database, service["project_id"], "production")
    staging = await add_environment(database, service["project_id"], "staging", base=production)
    await add_environment(database, service["project_id"], "pr-7", base=staging, pull_request=7)
    await put(api, service, {"A": "production", "B": "production", "C": "production"})
    await put(api, service, {"B": "staging"}, environment="staging")
    await put(api, service, {"C": "preview", "D": "preview"}, environment="pr-7")

    preview = ok(await api.get(variables_url(service), params={"environment": "pr-7"}))
    assert preview == {
        "environment": "pr-7",
        "variables": {"C": "preview", "D": "preview"},
        "inherited": {"A": "production", "B": "staging", "C": "production"},
    }
    staging_view = ok(await api.get(variables_url(service), params={"environment": "staging"}))
    assert staging_view["inherited"] == {"A": "production", "B": "production", "C": "production"}

    # A change to the base shows through where it is not overridden.
    await put(api, service, {"A": "production-2", "C": "production-2"})
    preview = ok(await api.get(variables_url(service), params={"environment": "pr-7"}))
    assert preview["inherited"] == {"A": "production-2", "B": "staging", "C": "production-2"}
    assert preview["variables"] == {"C": "preview", "D": "preview"}

    # An inherited variable is deleted where it is set, not in the preview.
    assert (await api.delete(variables_url(service, "A"), params={"environment": "pr-7"})).status_code == 404


async def effective(
    database: Database, service_id: str, environment: str, key: str = SECRET_KEY
) -> dict[str, str]:
    async with database.session() as session:
        service = await session.get(Service, service_id)
        assert service is not None
        env = await session.get(Environment, environment)
        assert env is not None
        return await effective_variables(session, SecretBox(key), service, env)


async def test_effective_variables_overlay_the_chain(api: httpx.AsyncClient, database: Database) -> None:
    service = await new_service(api)
    other = ok(await api.post(f"/v1/projects/{service['project_id']}/services", json={"name": "worker"}), 201)
    production = await environment_id(database, service["project_id"], "production")
    preview = await add_environment(database, service["project_id"], "pr-1", base=production, pull_request=1)
    await put(api, service, {"A": "1", "B": "1", "NIXPACKS_NODE_VERSION": "20"})
    await put(api, service, {"B": "2"}, environment="pr-1")
    await put(api, other, {"A": "other", "ONLY_OTHER": "x"})

    assert await effective(database, service["id"], production) == {
        "A": "1",
        "B": "1",
        "NIXPACKS_NODE_VERSION": "20",
    }
    assert await effective(database, service["id"], preview) == {
        "A": "1",
        "B": "2",
        "NIXPACKS_NODE_VERSION": "20",
    }
    assert await effective(database, other["id"], preview) == {"A": "other", "ONLY_OTHER": "x"}


async def test_effective_variables_survive_a_cycle(api: httpx.AsyncClient, database: Database) -> None:
    service = await new_service(api)
    production = await environment_id(database, service["project_id"], "production")
    staging = await add_environment(database, service["project_id"], "staging", base=production)
    async with database.transaction() as session:
        row = await session.get(Environment, production)
        assert row is not None
        row.base_environment_id = staging  # production ← staging ← production ...
    await put(api, service, {"A": "production", "B": "production"})
    await put(api, service, {"B": "staging"}, environment="staging")

    assert await effective(database, service["id"], staging) == {"A": "production", "B": "staging"}
    assert await effective(database, service["id"], production) == {"A": "production", "B": "production"}


async def test_effective_variables_follow_a_few_levels_only(
    api: httpx.AsyncClient, database: Database
) -> None:
    service = await new_service(api)
    base = await environment_id(database, service["project_id"], "production")
    await put(api, service, {"LEVEL_0": "root"})
    for level in range(1, MAX_BASE_LEVELS + 2):
        base = await add_environment(database, service["project_id"], f"level-{level}", base=base)
        await put(api, service, {f"LEVEL_{level}": "set"}, environment=f"level-{level}")

    deepest = await effective(database, service["id"], base)
    assert sorted(deepest) == [f"LEVEL_{level}" for level in range(1, MAX_BASE_LEVELS + 2)]


async def test_effective_variables_ignore_a_base_in_another_project(
    api: httpx.AsyncClient, database: Database
) -> None:
    service = await new_service(api)
    stranger = ok(await api.post("/v1/projects", json={"name": "stranger"}), 201)
    foreign = await environment_id(database, stranger["id"], "production")
    preview = await add_environment(database, service["project_id"], "pr-2", base=foreign, pull_request=2)
    async with database.transaction() as session:
        session.add(Variable(service_id=service["id"], environment_id=foreign, name="LEAK", value="x"))
    assert await effective(database, service["id"], preview) == {}


async def test_effective_variables_need_no_key_when_there_are_none(
    api: httpx.AsyncClient, database: Database
) -> None:
    service = await new_service(api)
    production = await environment_id(database, service["project_id"], "production")
    async with database.session() as session:
        found = await session.get(Service, service["id"])
        env = await session.get(Environment, production)
        assert found is not None and env is not None
        assert await effective_variables(session, SecretBox(None), found, env) == {}


# --- what a build sees ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "seen"),
    [
        pytest.param({}, {}, id="none"),
        pytest.param(
            {"NIXPACKS_NODE_VERSION": "20", "NIXPACKS_BUILD_CMD": "make", "DATABASE_URL": "postgres://x"},
            {"NIXPACKS_NODE_VERSION": "20", "NIXPACKS_BUILD_CMD": "make"},
            id="nixpacks-only",
        ),
        pytest.param({"RAILWAY_DOCKERFILE_PATH": "web.Dockerfile"}, {}, id="not-read-by-the-planner"),
        pytest.param({"nixpacks_node_version": "20", "XNIXPACKS_A": "1"}, {}, id="prefix-is-exact"),
        pytest.param({"NIXPACKS_": ""}, {"NIXPACKS_": ""}, id="bare-prefix"),
    ],
)
def test_build_variables(variables: dict[str, str], seen: dict[str, str]) -> None:
    assert build_variables(variables) == seen


# --- variables reach the replicas sealed -----------------------------------------------------------------


async def test_a_deploy_carries_the_variables_sealed_and_the_agent_activity_opens_them(
    api: httpx.AsyncClient, database: Database, tmp_path: Path
) -> None:
    """The deploy request (which Temporal keeps in its history) holds the variables encrypted; the
    activity that hands replicas to an agent opens them, with Dockyard's own variables on top."""
    service = await new_service(api)
    await put(api, service, {"DATABASE_URL": "postgres://app:hunter2@db/app", "NIXPACKS_NODE_VERSION": "22"})
    settings = api_settings(database, tmp_path, "127.0.0.1:1")
    async with database.session() as session:
        row = await session.get(Service, service["id"])
        assert row is not None
        production = await session.scalar(
            select(Environment).where(
                Environment.project_id == row.project_id, Environment.name == "production"
            )
        )
        assert production is not None
        variables = await service_variables(session, settings, row, production)
        source = SourceSpec(kind="upload", upload_id="upl_1")
        request = new_deployment(session, settings, row, production, source, variables=variables).request
        await session.rollback()

    assert "hunter2" not in request.model_dump_json()
    assert request.build.variables == {"NIXPACKS_NODE_VERSION": "22"}
    [spec, *_] = replica_specs(request, "127.0.0.1:5000/web@sha256:" + "a" * 64)
    assert "hunter2" not in spec.model_dump_json()
    opened = AgentActivities(settings)._opened(spec)
    assert opened.sealed_env is None
    assert opened.env["DATABASE_URL"] == "postgres://app:hunter2@db/app"
    assert opened.env["DOCKYARD_SERVICE_NAME"] == "web"
    forged = spec.model_copy(update={"env": {**spec.env, "DATABASE_URL": "set by dockyard"}})
    assert AgentActivities(settings)._opened(forged).env["DATABASE_URL"] == "set by dockyard"
    with pytest.raises(ApplicationError, match="cannot be read on this worker"):
        AgentActivities(settings.model_copy(update={"secret_key": None}))._opened(spec)
