"""Bad input is refused at the door, on both database backends: a control character in any body
field, path or query parameter or header is a 422 naming it (the database never sees it), a webhook
payload holding one is a 400 naming its key, and a hostname another service already has is a 409
naming that service and environment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.db import Database
from core.models import AuditEvent, Environment, WebhookDelivery
from core.webhooks import Provider
from tests.support.api import api_settings, running_api
from tests.support.registry import free_port
from tests.support.webhooks import pull_request_delivery, push_delivery, raw_delivery

IMAGE = "127.0.0.1:5000/acme/web:1"
REPO = "http://127.0.0.1:9/acme/shop.git"
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


@pytest.fixture
async def api(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # Temporal is not needed: nothing here may get as far as starting a deploy.
    async with running_api(api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")) as client:
        yield client


@pytest.fixture
async def shop(api: httpx.AsyncClient) -> dict[str, str]:
    """Ids to put in paths: a project, its image service and its repository service."""
    project = ok(await api.post("/v1/projects", json={"name": "shop"}), 201)
    web = ok(
        await api.post(f"/v1/projects/{project['id']}/services", json={"name": "web", "image": IMAGE}), 201
    )
    body = {"name": "api", "repo_url": REPO, "repo_branch": "main"}
    repo = ok(await api.post(f"/v1/projects/{project['id']}/services", json=body), 201)
    return {"project": project["id"], "service": web["id"], "repo_service": repo["id"]}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # formatted with the `shop` ids
    field: str  # the field the 422 names
    body: Any = None
    params: dict[str, str] | None = None


NODE_ENROLL = {"token": "t", "name": "n1", "csr": "x", "address": "127.0.0.1:7801"}
POOL = {"name": "web", "kind": "lxc", "template_vmid": 9000, "max_size": 5}

BODY_CASES = {
    "project-name": Case("POST", "/v1/projects", "name", {"name": "sh\x00op"}),
    "project-preview-base": Case(
        "PATCH",
        "/v1/projects/{project}",
        "preview_base_environment",
        {"preview_base_environment": "pro\x00d"},
    ),
    "environment-name": Case("POST", "/v1/projects/{project}/environments", "name", {"name": "st\x00"}),
    "service-name": Case(
        "POST", "/v1/projects/{project}/services", "name", {"name": "w\x00", "image": IMAGE}
    ),
    "service-repo-url": Case(
        "POST",
        "/v1/projects/{project}/services",
        "repo_url",
        {"name": "worker", "repo_url": "https://example.test/a\x00b.git"},
    ),
    "service-repo-branch": Case(
        "POST",
        "/v1/projects/{project}/services",
        "repo_branch",
        {"name": "worker", "repo_url": REPO, "repo_branch": "ma\x00in"},
    ),
    "service-start-command": Case(
        "POST",
        "/v1/projects/{project}/services",
        "start_command",
        {"name": "worker", "repo_url": REPO, "start_command": "gunicorn\x00app"},
    ),
    "service-build-command-escape": Case(
        "POST",
        "/v1/projects/{project}/services",
        "build_command",
        {"name": "worker", "repo_url": REPO, "build_command": "make \x1b[31mall"},
    ),
    "service-build-command-newline": Case(
        "PATCH", "/v1/services/{repo_service}", "build_command", {"build_command": "make\nRUN rm -rf /"}
    ),
    "service-watch-pattern-del": Case(
        "PATCH", "/v1/services/{repo_service}", "watch_patterns.1", {"watch_patterns": ["src/**", "do\x7fcs"]}
    ),
    "service-repo-token": Case(
        "PATCH", "/v1/services/{repo_service}", "repo_token", {"repo_token": "to\x00k"}
    ),
    "service-constraint": Case(
        "PATCH", "/v1/services/{service}", "constraints.0", {"constraints": ["zone=a\x00"]}
    ),
    "service-health-path": Case(
        "PATCH", "/v1/services/{service}", "health_check_path", {"health_check_path": "/he\x00alth"}
    ),
    "service-root-directory": Case(
        "PATCH", "/v1/services/{repo_service}", "root_directory", {"root_directory": "app\x01"}
    ),
    "service-image": Case("PATCH", "/v1/services/{service}", "image", {"image": "127.0.0.1:5000/a\x00:1"}),
    "deployment-ref": Case("POST", "/v1/services/{repo_service}/deployments", "ref", {"ref": "v1\x00"}),
    "deployment-environment": Case(
        "POST", "/v1/services/{service}/deployments", "environment", {"environment": "prod\x00"}
    ),
    "variable-value": Case(
        "PUT", "/v1/services/{service}/variables", "variables.GREETING", {"variables": {"GREETING": "hi\x00"}}
    ),
    "variable-name": Case(
        "PUT", "/v1/services/{service}/variables", "variables.A\\x00", {"variables": {"A\x00": "x"}}
    ),
    "rollback-deployment": Case(
        "POST", "/v1/services/{service}/rollback", "deployment_id", {"deployment_id": "dep_\x00"}
    ),
    "scale-environment": Case(
        "POST", "/v1/services/{service}/scale", "environment", {"replicas": 2, "environment": "pro\x00"}
    ),
    "node-enroll-token": Case("POST", "/v1/nodes/enroll", "token", {**NODE_ENROLL, "token": "t\x00"}),
    "node-enroll-csr": Case("POST", "/v1/nodes/enroll", "csr", {**NODE_ENROLL, "csr": "-----BEGIN\x00"}),
    "node-pool-tags": Case("POST", "/v1/node-pools", "tags.0", {**POOL, "tags": ["a\x00"]}),
    "node-pool-ipconfig": Case("POST", "/v1/node-pools", "ipconfig0", {**POOL, "ipconfig0": "ip=dhcp\x0b"}),
}

PARAMETER_CASES = {
    "path-project": Case("GET", "/v1/projects/prj%00x", "project_id"),
    "path-project-environments": Case(
        "POST", "/v1/projects/prj%00x/environments", "project_id", {"name": "st"}
    ),
    "path-service": Case("GET", "/v1/services/svc%00x", "service_id"),
    "path-service-patch": Case("PATCH", "/v1/services/svc%00x", "service_id", {"replicas": 2}),
    "path-deployment": Case("GET", "/v1/deployments/dep%00x", "deployment_id"),
    "path-variable-name": Case("DELETE", "/v1/services/{service}/variables/A%00B", "name"),
    "path-node": Case("POST", "/v1/nodes/node%7Fx/cordon", "node_id"),
    "path-pool": Case("GET", "/v1/node-pools/pool%00x", "pool_id"),
    "path-webhook-project": Case("POST", "/v1/webhooks/github/prj%00x", "project_id", {}),
    "path-internal-upload": Case("GET", "/internal/sources/upl%00x", "upload_id"),
    "query-url-environment": Case(
        "GET", "/v1/services/{service}/url", "environment", params={"environment": "pro\x00d"}
    ),
    "query-variables-environment": Case(
        "GET", "/v1/services/{service}/variables", "environment", params={"environment": "\x00"}
    ),
    "query-upload-environment": Case(
        "POST", "/v1/services/{service}/deployments/upload", "environment", params={"environment": "p\x1f"}
    ),
    "query-unknown-parameter": Case("GET", "/v1/projects", "verbose", params={"verbose": "1\x00"}),
}


async def counts(database: Database) -> tuple[int, int]:
    """Audit events and environments: a refused request adds neither."""
    async with database.session() as session:
        events = await session.scalar(select(func.count()).select_from(AuditEvent))
        environments = await session.scalar(select(func.count()).select_from(Environment))
    return events or 0, environments or 0


async def refused(api: httpx.AsyncClient, case: Case, ids: dict[str, str]) -> dict[str, Any]:
    response = await api.request(case.method, case.path.format(**ids), json=case.body, params=case.params)
    assert response.status_code == 422, response.text
    answer: dict[str, Any] = response.json()
    reasons = {error["field"]: error["reason"] for error in answer["errors"]}
    assert case.field in reasons, answer
    assert "control character U+" in reasons[case.field], answer
    return answer


@pytest.mark.parametrize("case", list(BODY_CASES.values()), ids=list(BODY_CASES))
async def test_a_control_character_in_a_body_field_is_a_422_naming_it(
    api: httpx.AsyncClient, shop: dict[str, str], database: Database, case: Case
) -> None:
    before = await counts(database)
    await refused(api, case, shop)
    assert await counts(database) == before


@pytest.mark.parametrize("case", list(PARAMETER_CASES.values()), ids=list(PARAMETER_CASES))
async def test_a_control_character_in_a_path_or_query_parameter_is_a_422_naming_it(
    api: httpx.AsyncClient, shop: dict[str, str], database: Database, case: Case
) -> None:
    before = await counts(database)
    await refused(api, case, shop)
    assert await counts(database) == before


async def test_the_422_says_which_character_and_where(api: httpx.AsyncClient, shop: dict[str, str]) -> None:
    answer = await refused(api, BODY_CASES["deployment-ref"], shop)
    assert answer["detail"] == (
        "ref: contains the control character U+0000 at position 2; give one line of printable text"
    )
    answer = await refused(api, BODY_CASES["variable-value"], shop)
    assert answer["errors"] == [
        {
            "field": "variables.GREETING",
            "reason": "contains the control character U+0000 at position 2; of the control "
            "characters only tab, line feed and carriage return are allowed",
        }
    ]


async def test_a_header_holding_a_control_character_is_a_422_naming_it(
    api: httpx.AsyncClient, shop: dict[str, str], database: Database
) -> None:
    before = await counts(database)
    response = await api.post(
        f"/v1/webhooks/github/{shop['project']}",
        content=b"{}",
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "id\x00", "Authorization": ""},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "header.x-github-delivery"
    assert await counts(database) == before


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            {"variables": {"PEM": "-----BEGIN-----\r\nAAAA\n\tBBBB\n-----END-----\n"}}, id="variable"
        ),
    ],
)
async def test_multi_line_fields_keep_their_line_breaks_and_tabs(
    api: httpx.AsyncClient, shop: dict[str, str], text: dict[str, Any]
) -> None:
    ok(await api.put(f"/v1/services/{shop['service']}/variables", json=text))
    answer = ok(await api.get(f"/v1/services/{shop['service']}/variables"))
    assert answer["variables"] == text["variables"]


# --- webhook payloads --------------------------------------------------------------------------------------


async def webhook(api: httpx.AsyncClient, project_id: str) -> str:
    return ok(await api.get(f"/v1/projects/{project_id}/webhook"))["secret"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("provider", "field", "delivery"),
    [
        pytest.param(
            Provider.GITHUB,
            "ref",
            lambda secret: push_delivery(Provider.GITHUB, secret, repo_url=REPO, branch="ma\x00in", sha=SHA),
            id="github-push-ref",
        ),
        pytest.param(
            Provider.GITHUB,
            "head_commit.message",
            lambda secret: push_delivery(
                Provider.GITHUB, secret, repo_url=REPO, branch="main", sha=SHA, message="Fix\n\nthe\x00bug"
            ),
            id="github-push-commit-message",
        ),
        pytest.param(
            Provider.GITLAB,
            "ref",
            lambda secret: push_delivery(Provider.GITLAB, secret, repo_url=REPO, branch="ma\x01in", sha=SHA),
            id="gitlab-push-ref",
        ),
        pytest.param(
            Provider.GITHUB,
            "pull_request.title",
            lambda secret: raw_delivery(
                Provider.GITHUB,
                "pull_request",
                pull_request_delivery(
                    Provider.GITHUB,
                    "opened",
                    secret,
                    repo_url=REPO,
                    number=7,
                    head_branch="login",
                    head_sha=SHA,
                ).body.replace(b'"title": "', b'"title": "\\u0000'),
                secret,
            ),
            id="github-pull-request-title",
        ),
    ],
)
async def test_a_webhook_payload_holding_a_control_character_is_a_400_naming_the_key(
    api: httpx.AsyncClient,
    shop: dict[str, str],
    database: Database,
    provider: Provider,
    field: str,
    delivery: Any,
) -> None:
    signed = delivery(await webhook(api, shop["project"]))
    response = await api.post(
        f"/v1/webhooks/{provider.value}/{shop['project']}",
        content=signed.body,
        headers={**signed.headers, "Authorization": ""},
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}: contains the control character U+00")
    async with database.session() as session:
        [logged] = await session.scalars(select(WebhookDelivery))
    assert (logged.verdict, logged.deployment_ids) == ("invalid", [])
    assert ok(await api.get(f"/v1/services/{shop['repo_service']}/deployments")) == []


# --- hostname collisions -----------------------------------------------------------------------------------


async def project(api: httpx.AsyncClient, name: str, *environments: str) -> str:
    created = ok(await api.post("/v1/projects", json={"name": name}), 201)
    for environment in environments:
        ok(await api.post(f"/v1/projects/{created['id']}/environments", json={"name": environment}), 201)
    return created["id"]  # type: ignore[no-any-return]


async def service(api: httpx.AsyncClient, project_id: str, name: str, **fields: Any) -> httpx.Response:
    return await api.post(
        f"/v1/projects/{project_id}/services", json={"name": name, "image": IMAGE, **fields}
    )


@pytest.mark.parametrize("same_project", [True, False], ids=["same-project", "other-project"])
async def test_a_service_whose_hostname_is_taken_is_a_409_naming_the_other(
    api: httpx.AsyncClient, database: Database, same_project: bool
) -> None:
    shop = await project(api, "shop", "a-b")
    ok(await service(api, shop, "web"), 201)  # web-a-b.apps.test in a-b
    other = shop if same_project else await project(api, "blog")
    ok(await api.post(f"/v1/projects/{other}/environments", json={"name": "b"}), 201)  # web-b: free

    response = await service(api, other, "web-a")

    assert response.status_code == 409, response.text
    assert response.json()["detail"] == (
        "name: 'web-a' would give a second service the hostname web-a-b.apps.test, which is service "
        "'web' in environment 'a-b' (project 'shop')'s; choose another name"
    )
    names = ok(await api.get(f"/v1/projects/{other}/services"))
    assert [s["name"] for s in names] == (["web"] if same_project else [])


async def test_an_environment_whose_hostnames_are_taken_is_a_409_naming_the_other(
    api: httpx.AsyncClient,
) -> None:
    shop = await project(api, "shop", "a-b")
    ok(await service(api, shop, "web"), 201)
    blog = await project(api, "blog")
    ok(await service(api, blog, "web-a"), 201)

    response = await api.post(f"/v1/projects/{blog}/environments", json={"name": "b"})

    assert response.status_code == 409, response.text
    assert response.json()["detail"] == (
        "name: 'b' would give a second service the hostname web-a-b.apps.test, which is service "
        "'web' in environment 'a-b' (project 'shop')'s; choose another name"
    )
    environments = ok(await api.get(f"/v1/projects/{blog}/environments"))
    assert [e["name"] for e in environments] == ["production"]
    # Another name is free, and so is the same name without the clash.
    ok(await api.post(f"/v1/projects/{blog}/environments", json={"name": "c"}), 201)
    ok(await api.post(f"/v1/projects/{shop}/environments", json={"name": "b"}), 201)


async def test_hostnames_that_only_look_alike_do_not_collide(api: httpx.AsyncClient) -> None:
    shop = await project(api, "shop", "a-b", "b")
    ok(await service(api, shop, "web"), 201)  # web-a-b, web-b, web-production
    ok(await service(api, shop, "web-b"), 201)  # web-b-a-b, web-b-b, web-b-production
    ok(await service(api, shop, "a"), 201)
    blog = await project(api, "blog", "a-b-c")
    ok(await service(api, blog, "web-x"), 201)


async def test_a_preview_whose_hostname_is_taken_skips_the_service_and_says_why(
    api: httpx.AsyncClient, database: Database
) -> None:
    """A pull request's preview `pr-7` of service `web` would be web-pr-7, already the hostname of
    `web-pr` in environment `7` of another project: that service is not previewed (the delivery
    says why) and, with nothing left to preview, no environment is made."""
    blog = await project(api, "blog", "7")
    ok(await service(api, blog, "web-pr"), 201)
    shop = await project(api, "shop")
    ok(await api.patch(f"/v1/projects/{shop}", json={"previews_enabled": True}))
    web = ok(await service(api, shop, "web", image=None, repo_url=REPO, repo_branch="main"), 201)

    secret = await webhook(api, shop)
    delivery = pull_request_delivery(
        Provider.GITHUB, "opened", secret, repo_url=REPO, number=7, head_branch="login", head_sha=SHA
    )
    response = await api.post(
        f"/v1/webhooks/github/{shop}",
        content=delivery.body,
        headers={**delivery.headers, "Authorization": ""},
    )

    answer = ok(response, 202)
    assert answer["verdict"] == "ignored"
    assert answer["reason"] == (
        "web: not deployed to pr-7: hostname web-pr-7.apps.test is already service 'web-pr' in "
        "environment '7' (project 'blog')'s"
    )
    environments = ok(await api.get(f"/v1/projects/{shop}/environments"))
    assert [e["name"] for e in environments] == ["production"]
    assert ok(await api.get(f"/v1/services/{web['id']}/deployments")) == []
