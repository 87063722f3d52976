"""The REST API in process (ASGI, inside its lifespan) on both database backends and a real Temporal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.contracts import RouteSpec
from activities.routing import RoutingActivities
from core.db import Database
from core.models import AuditEvent
from core.routing import MIDDLEWARES, RETRY_MIDDLEWARE
from core.settings import load_settings
from core.temporal import ENVIRONMENT_ID, SERVICE_ID
from tests.support.api import TOKEN, api_settings, running_api
from tests.support.components import TemporalDevServer
from tests.support.registry import free_port

IMAGE = "127.0.0.1:5000/acme/web:1"


@pytest.fixture
def temporal_down() -> str:
    """A loopback port nothing listens on."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
async def api(database: Database, tmp_path: Path, temporal_down: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(api_settings(database, tmp_path, temporal_down)) as client:
        yield client


@pytest.fixture
async def api_with_temporal(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(api_settings(database, tmp_path, temporal_server.address)) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def new_service(api: httpx.AsyncClient, project: str = "shop", **fields: Any) -> tuple[dict, dict]:
    created = ok(await api.post("/v1/projects", json={"name": project}), 201)
    body = {"name": "web", "image": IMAGE} | fields
    service = ok(await api.post(f"/v1/projects/{created['id']}/services", json=body), 201)
    return created, service


async def test_same_service_name_in_two_projects_gets_distinct_hostnames(api: httpx.AsyncClient) -> None:
    _, first = await new_service(api, project="shop")
    _, second = await new_service(api, project="blog")
    _, third = await new_service(api, project="wiki", name="web")

    assert first["urls"]["production"] == "http://web-production.apps.test:18080"
    assert second["urls"]["production"] == "http://web-blog-production.apps.test:18080"
    assert third["urls"]["production"] == "http://web-wiki-production.apps.test:18080"


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer "])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/projects"),
        ("POST", "/v1/projects"),
        ("POST", "/v1/services/svc_x/deployments"),
        ("GET", "/internal/traefik/config"),
    ],
)
async def test_requires_the_api_token(
    api: httpx.AsyncClient, authorization: str | None, method: str, path: str
) -> None:
    request = api.build_request(method, path, json={"name": "shop"} if method == "POST" else None)
    del request.headers["Authorization"]
    if authorization is not None:
        request.headers["Authorization"] = authorization
    response = await api.send(request)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "API token" in response.json()["detail"]


async def test_health_needs_no_token(api: httpx.AsyncClient) -> None:
    assert ok(await api.get("/healthz", headers={"Authorization": ""})) == {"status": "ok"}


# --- projects and services -----------------------------------------------------------------------


async def test_project_gets_a_production_environment(api: httpx.AsyncClient) -> None:
    project = ok(await api.post("/v1/projects", json={"name": "shop"}), 201)
    assert project["name"] == "shop"
    assert project["id"].startswith("prj_")
    assert ok(await api.get(f"/v1/projects/{project['id']}")) == project
    assert ok(await api.get("/v1/projects")) == [project]
    environments = ok(await api.get(f"/v1/projects/{project['id']}/environments"))
    assert [(e["name"], e["project_id"]) for e in environments] == [("production", project["id"])]


async def test_duplicate_names_conflict(api: httpx.AsyncClient) -> None:
    project, _ = await new_service(api)
    response = await api.post("/v1/projects", json={"name": "shop"})
    assert response.status_code == 409
    assert response.json()["detail"] == "name: a project named 'shop' already exists"
    response = await api.post(f"/v1/projects/{project['id']}/services", json={"name": "web", "image": IMAGE})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("name: ")
    response = await api.post(f"/v1/projects/{project['id']}/environments", json={"name": "production"})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("name: ")


async def test_service_create_list_get_patch(api: httpx.AsyncClient) -> None:
    project, service = await new_service(api, port=3000)
    assert service | {"id": "", "created_at": ""} == {
        "id": "",
        "project_id": project["id"],
        "name": "web",
        "image": IMAGE,
        "repo_url": None,
        "repo_branch": None,
        "root_directory": None,
        "dockerfile_path": None,
        "build_command": None,
        "start_command": None,
        "has_repo_credential": False,
        "watch_patterns": [],
        "previews": True,
        "port": 3000,
        "replicas": 1,
        "health_check_path": None,
        "cpu_millis": None,
        "memory_mb": None,
        "constraints": [],
        "placement_strategy": "spread",
        "overlap_seconds": None,
        "draining_seconds": None,
        "created_at": "",
        "urls": {"production": "http://web-production.apps.test:18080"},
        "notices": [],
    }
    assert ok(await api.get(f"/v1/projects/{project['id']}/services")) == [service]
    assert ok(await api.get(f"/v1/services/{service['id']}")) == service

    changes = {"replicas": 3, "health_check_path": "/healthz", "image": "127.0.0.1:5000/acme/web:2"}
    patched = ok(await api.patch(f"/v1/services/{service['id']}", json=changes))
    assert patched == service | changes
    cleared = ok(await api.patch(f"/v1/services/{service['id']}", json={"health_check_path": None}))
    assert cleared == patched | {"health_check_path": None}
    assert ok(await api.get(f"/v1/services/{service['id']}")) == cleared

    git = {"repo_url": "https://git.test/acme/web.git", "repo_branch": "main", "watch_patterns": ["/web/**"]}
    connected = ok(await api.patch(f"/v1/services/{service['id']}", json=git))
    assert connected == cleared | git | {"image": None}
    back = ok(await api.patch(f"/v1/services/{service['id']}", json={"image": IMAGE, "previews": False}))
    assert back == connected | {"image": IMAGE, "repo_url": None, "repo_branch": None, "previews": False}

    placement = {
        "cpu_millis": 500,
        "memory_mb": 256,
        "constraints": ["zone=eu", "disk!=hdd"],
        "placement_strategy": "binpack",
        "overlap_seconds": 5.5,
        "draining_seconds": 30,
    }
    placed = ok(await api.patch(f"/v1/services/{service['id']}", json=placement))
    assert placed == back | placement
    unlimited = {"cpu_millis": None, "memory_mb": None, "overlap_seconds": None, "draining_seconds": None}
    assert ok(await api.patch(f"/v1/services/{service['id']}", json=unlimited)) == placed | unlimited

    ok(await api.post(f"/v1/projects/{project['id']}/environments", json={"name": "staging"}), 201)
    urls = (ok(await api.get(f"/v1/services/{service['id']}")))["urls"]
    assert urls == {
        "production": "http://web-production.apps.test:18080",
        "staging": "http://web-staging.apps.test:18080",
    }


def svc(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "image": IMAGE} | fields


INVALID = [  # (id, target, body, field, reason)
    ("project-name", "project", {"name": "Shop!"}, "name", "String should match pattern"),
    ("project-name-empty", "project", {"name": ""}, "name", "at least 1 character"),
    ("project-name-missing", "project", {}, "name", "Field required"),
    ("extra-field", "project", {"name": "shop", "owner": "me"}, "owner", "Extra inputs are not permitted"),
    ("service-name", "service", svc(name="Web"), "name", "should match pattern"),
    ("port-0", "service", svc(port=0), "port", "greater than or equal to 1"),
    ("port-big", "service", svc(port=65536), "port", "less than or equal to 65535"),
    ("image", "service", svc(image="Acme/Web"), "image", "invalid image reference 'Acme/Web'"),
    ("two-sources", "service", svc(repo_url="https://git.test/a.git"), "body", "give one source, not both"),
    ("root-escape", "service", svc(root_directory="../etc"), "root_directory", "without '..'"),
    ("replicas", "service", svc(replicas=0), "replicas", "greater than or equal to 1"),
    ("health-path", "service", svc(health_check_path="up"), "health_check_path", "should match pattern"),
    ("patch-port", "patch", {"port": 0}, "port", "greater than or equal to 1"),
    ("patch-image", "patch", {"image": "nginx:"}, "image", "bad tag ''"),
    ("patch-image-null", "patch", {"image": None}, "image", "must not be null"),
    ("patch-replicas-null", "patch", {"replicas": None}, "replicas", "must not be null"),
    ("patch-rename", "patch", {"name": "api"}, "name", "Extra inputs are not permitted"),
    ("patch-two-sources", "patch", {"image": IMAGE, "repo_url": "https://git.test/a"}, "body", "not both"),
    ("patch-watch", "patch", {"watch_patterns": [""]}, "watch_patterns.0", "at least 1 character"),
    ("patch-previews-null", "patch", {"previews": None}, "previews", "must not be null"),
    (
        "constraint",
        "service",
        svc(constraints=["zone"]),
        "constraints",
        'expected "key=value" or "key!=value"',
    ),
    ("strategy", "service", svc(placement_strategy="random"), "placement_strategy", "'spread' or 'binpack'"),
    ("cpu-tiny", "service", svc(cpu_millis=1), "cpu_millis", "greater than or equal to 10"),
    ("memory-tiny", "service", svc(memory_mb=1), "memory_mb", "greater than or equal to 6"),
    ("overlap-negative", "patch", {"overlap_seconds": -1}, "overlap_seconds", "greater than or equal to 0"),
    ("draining-long", "patch", {"draining_seconds": 3601}, "draining_seconds", "less than or equal to 3600"),
    ("patch-constraints-null", "patch", {"constraints": None}, "constraints", "must not be null"),
    ("project-previews", "project-patch", {"previews_enabled": "maybe"}, "previews_enabled", "valid boolean"),
    ("deploy-environment", "deploy", {"environment": "Prod"}, "environment", "should match pattern"),
    ("deploy-image", "deploy", {"image": "a b"}, "image", "empty or contains spaces"),
]


@pytest.mark.parametrize(
    ("target", "body", "field", "reason"), [pytest.param(*c[1:], id=c[0]) for c in INVALID]
)
async def test_invalid_input_names_the_field(
    api: httpx.AsyncClient, target: str, body: dict[str, Any], field: str, reason: str
) -> None:
    project, service = await new_service(api)
    method, path = {
        "project": ("POST", "/v1/projects"),
        "service": ("POST", f"/v1/projects/{project['id']}/services"),
        "patch": ("PATCH", f"/v1/services/{service['id']}"),
        "project-patch": ("PATCH", f"/v1/projects/{project['id']}"),
        "deploy": ("POST", f"/v1/services/{service['id']}/deployments"),
    }[target]
    response = await api.request(method, path, json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    assert reason in errors[0]["reason"]
    assert response.json()["detail"].startswith(f"{field}: ")
    assert ok(await api.get(f"/v1/services/{service['id']}")) == service


async def test_project_previews_are_off_until_enabled(api: httpx.AsyncClient) -> None:
    project, _ = await new_service(api)
    assert (project["previews_enabled"], project["preview_base_environment"]) == (False, "production")
    ok(await api.post(f"/v1/projects/{project['id']}/environments", json={"name": "staging"}), 201)
    changes = {"previews_enabled": True, "preview_base_environment": "staging"}
    assert ok(await api.patch(f"/v1/projects/{project['id']}", json=changes)) == project | changes
    missing = await api.patch(f"/v1/projects/{project['id']}", json={"preview_base_environment": "qa"})
    assert missing.status_code == 404 and "qa" in missing.json()["detail"]


@pytest.mark.parametrize("content", ['{"name": ', "name=shop", '{"name": "shop",}'])
async def test_malformed_json_is_a_400(api: httpx.AsyncClient, content: str) -> None:
    response = await api.post("/v1/projects", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"] == "malformed JSON body"
    assert ok(await api.get("/v1/projects")) == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_not_sent_as_json_is_told_so(api: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await api.post("/v1/projects", content='{"name": "shop"}', headers=headers)
    assert response.status_code == 415
    assert "Content-Type: application/json" in response.json()["detail"]
    assert ok(await api.get("/v1/projects")) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "detail"),
    [
        ("GET", "/v1/projects/prj_nope", None, "project 'prj_nope' not found"),
        ("GET", "/v1/projects/prj_nope/environments", None, "project 'prj_nope' not found"),
        (
            "POST",
            "/v1/projects/prj_nope/services",
            {"name": "web", "image": IMAGE},
            "project 'prj_nope' not found",
        ),
        ("GET", "/v1/services/svc_nope", None, "service 'svc_nope' not found"),
        ("PATCH", "/v1/services/svc_nope", {"replicas": 2}, "service 'svc_nope' not found"),
        ("GET", "/v1/services/svc_nope/url", None, "service 'svc_nope' not found"),
        ("GET", "/v1/services/svc_nope/deployments", None, "service 'svc_nope' not found"),
        ("POST", "/v1/services/svc_nope/deployments", {}, "service 'svc_nope' not found"),
        ("GET", "/v1/deployments/dep_nope", None, "deployment 'dep_nope' not found"),
        ("GET", "/v1/services/{service}/url?environment=staging", None, "environment 'staging' not found"),
        (
            "POST",
            "/v1/services/{service}/deployments",
            {"environment": "staging"},
            "environment 'staging' not found",
        ),
    ],
)
async def test_unknown_ids_are_404s_naming_kind_and_id(
    api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None, detail: str
) -> None:
    _, service = await new_service(api)
    response = await api.request(method, path.format(service=service["id"]), json=body)
    assert response.status_code == 404
    assert response.json() == {"detail": detail, "errors": []}


# --- routing -------------------------------------------------------------------------------------


async def test_traefik_config_and_service_url_follow_published_routes(
    api: httpx.AsyncClient, database: Database, tmp_path: Path
) -> None:
    project, web = await new_service(api)
    api_service = ok(
        await api.post(f"/v1/projects/{project['id']}/services", json={"name": "api", "image": IMAGE}), 201
    )
    production = (ok(await api.get(f"/v1/projects/{project['id']}/environments")))[0]["id"]
    assert ok(await api.get("/internal/traefik/config")) == {}
    url = ok(await api.get(f"/v1/services/{web['id']}/url"))
    assert url == {
        "service_id": web["id"],
        "environment": "production",
        "url": "http://web-production.apps.test:18080",
        "deployment_id": None,
    }

    routing = RoutingActivities(database, load_settings(state_dir=tmp_path, database_url=database.url))
    for service, servers in ((web, ["127.0.0.1:32002", "127.0.0.1:32001"]), (api_service, [])):
        await routing.publish_route(
            RouteSpec(
                service_id=service["id"],
                environment_id=production,
                hostname=f"{service['name']}-production.apps.test",
                deployment_id="dep_published",
                servers=servers,
            )
        )

    name = f"{web['id']}-{production}".replace("_", "-")
    rule = "Host(`web-production.apps.test`)"
    assert ok(await api.get("/internal/traefik/config")) == {
        "http": {
            "routers": {
                name: {
                    "rule": rule,
                    "service": name,
                    "entryPoints": ["web"],
                    "middlewares": [RETRY_MIDDLEWARE],
                },
                f"{name}-tls": {
                    "rule": rule,
                    "service": name,
                    "entryPoints": ["websecure"],
                    "middlewares": [RETRY_MIDDLEWARE],
                    "tls": {},
                },
            },
            "services": {
                name: {
                    "loadBalancer": {
                        "servers": [{"url": "http://127.0.0.1:32001"}, {"url": "http://127.0.0.1:32002"}],
                        "passHostHeader": True,
                    }
                }
            },
            "middlewares": MIDDLEWARES,
        }
    }
    url = ok(await api.get(f"/v1/services/{web['id']}/url", params={"environment": "production"}))
    assert url["deployment_id"] == "dep_published"


# --- deployments ---------------------------------------------------------------------------------


async def audit_trail(database: Database) -> list[tuple[str, str, str]]:
    """What the requests changed (the API's own first admin, made at start, left out)."""
    async with database.session() as session:
        events = await session.scalars(
            select(AuditEvent).where(AuditEvent.action != "user.create").order_by(AuditEvent.id)
        )
        return [(e.actor, e.action, e.target) for e in events]


async def test_deploy_with_temporal_down_fails_at_submit(
    api: httpx.AsyncClient, database: Database, temporal_down: str
) -> None:
    _, service = await new_service(api)
    response = await api.post(f"/v1/services/{service['id']}/deployments", json={})
    assert response.status_code == 503
    assert response.json()["detail"].startswith(f"Temporal is unavailable at {temporal_down}")

    [deployment] = ok(await api.get(f"/v1/services/{service['id']}/deployments"))
    assert (deployment["status"], deployment["failed_step"]) == ("FAILED", "submit")
    assert temporal_down in deployment["message"]
    assert ok(await api.get(f"/v1/deployments/{deployment['id']}")) == deployment
    assert (await audit_trail(database))[-1] == ("admin", "deployment.create", deployment["id"])


async def test_mutations_are_audited(api: httpx.AsyncClient, database: Database) -> None:
    project, service = await new_service(api)
    staging = ok(await api.post(f"/v1/projects/{project['id']}/environments", json={"name": "staging"}), 201)
    ok(await api.patch(f"/v1/services/{service['id']}", json={"replicas": 2}))
    await api.post("/v1/projects", json={"name": "shop"})  # a conflict changes nothing
    await api.get(f"/v1/services/{service['id']}")

    assert await audit_trail(database) == [
        ("admin", "project.create", project["id"]),
        ("admin", "service.create", service["id"]),
        ("admin", "environment.create", staging["id"]),
        ("admin", "service.update", service["id"]),
    ]
    async with database.session() as session:
        update = await session.scalar(select(AuditEvent).where(AuditEvent.action == "service.update"))
    assert update is not None and update.detail == {"replicas": 2}


async def test_deploy_queues_on_the_service_workflow(
    api_with_temporal: httpx.AsyncClient, temporal_client: Client, database: Database
) -> None:
    api = api_with_temporal
    project, service = await new_service(api)
    production = (ok(await api.get(f"/v1/projects/{project['id']}/environments")))[0]["id"]
    entity = temporal_client.get_workflow_handle(f"service/{service['id']}/{production}")
    try:
        image = "127.0.0.1:5000/acme/web:2"
        first = ok(await api.post(f"/v1/services/{service['id']}/deployments", json={"image": image}), 202)
        second = ok(await api.post(f"/v1/services/{service['id']}/deployments", json={}), 202)

        for deployment in (first, second):
            assert deployment["status"] == "QUEUED"
            assert deployment["failed_step"] is None
            assert deployment["image"] == image
            assert deployment["workflow_id"] == f"deploy/{service['id']}/{production}/{deployment['id']}"
        assert first["id"] != second["id"]
        assert (ok(await api.get(f"/v1/services/{service['id']}")))["image"] == image
        listed = ok(
            await api.get(f"/v1/services/{service['id']}/deployments", params={"environment": "production"})
        )
        assert {d["id"] for d in listed} == {first["id"], second["id"]}

        description = await entity.describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        assert description.workflow_type == "ServiceWorkflow"
        assert description.task_queue.startswith("api-tests-")
        assert description.typed_search_attributes[SERVICE_ID] == service["id"]
        assert description.typed_search_attributes[ENVIRONMENT_ID] == production
        assert ok(await api.get(f"/v1/deployments/{first['id']}")) == first
        trail = await audit_trail(database)
        assert trail[-2:] == [
            ("admin", "deployment.create", first["id"]),
            ("admin", "deployment.create", second["id"]),
        ]
    finally:
        await terminate(entity)


async def terminate(handle: WorkflowHandle[Any, Any]) -> None:
    try:
        await handle.terminate(reason="test over")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
