"""The CLI speaks the API's own models: the names it derives are ones the API takes, the bodies it sends
are the API's request models (unvalidated: the API judges them), and it reads answers as the API's
response models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api.schemas.deployments import DeploymentRead
from api.schemas.pools import NodePoolRead, PoolNodeRead
from api.schemas.projects import ProjectCreate, ProjectRead
from api.schemas.services import ServiceCreate
from cli.link import (
    PROJECT_NAME_MAX,
    PROJECTS,
    SERVICE_NAME_MAX,
    ApiError,
    call,
    describe_deployment,
    request_json,
    valid_name,
)
from cli.pools import NODE_POOLS, create_body, node_lines, resize_body, summary
from core.contracts import DeploymentStatus

CREATED = datetime(2026, 12, 7, 18, 1, 45, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "directory",
    ["shop", "My Shop", "Ünïcode Café", "--", "a_b.c", "x" * 100, "web-" * 30],
    ids=["plain", "spaces", "accents", "only-dashes", "punctuation", "too-long", "dash-at-the-cut"],
)
def test_a_name_made_from_a_directory_is_one_the_api_takes(directory: str) -> None:
    ProjectCreate.model_validate({"name": valid_name(directory, PROJECT_NAME_MAX)})
    ServiceCreate.model_validate({"name": valid_name(directory, SERVICE_NAME_MAX)})


def test_the_name_limits_are_the_apis() -> None:
    too_long = "a" * (SERVICE_NAME_MAX + 1)

    assert (PROJECT_NAME_MAX, SERVICE_NAME_MAX) == (63, 40)
    ProjectCreate.model_validate({"name": too_long})
    with pytest.raises(ValueError, match="at most 40 characters"):
        ServiceCreate.model_validate({"name": too_long})


POOL_OPTIONS: dict[str, Any] = {
    "name": "web",
    "kind": "lxc",
    "template": 9000,
    "size": None,
    "min_size": 0,
    "max_size": 1,
    "cores": 2,
    "memory": 2048,
    "disk": 16,
    "pve_nodes": [],
    "labels": [],
    "spec": None,
}
POOL_BODY: dict[str, Any] = {
    "name": "web",
    "kind": "lxc",
    "template_vmid": 9000,
    "size": None,
    "min_size": 0,
    "max_size": 1,
    "cores": 2,
    "memory_mib": 2048,
    "disk_gib": 16,
    "pve_nodes": [],
    "labels": {},
}


@pytest.mark.parametrize(
    ("options", "changes"),
    [
        pytest.param({}, {}, id="defaults"),
        pytest.param(
            {"size": 2, "pve_nodes": ["pve2"], "labels": ["zone=a", "disk=ssd"]},
            {"size": 2, "pve_nodes": ["pve2"], "labels": {"zone": "a", "disk": "ssd"}},
            id="size-nodes-labels",
        ),
        pytest.param(
            {"spec": '{"bridge": "vmbr1", "name": "other", "unknown": 1}'},
            {"bridge": "vmbr1", "name": "other", "unknown": 1},
            id="spec-over-the-options",
        ),
        pytest.param(
            {"kind": "docker", "min_size": 3, "max_size": 2, "memory": -1},
            {"kind": "docker", "min_size": 3, "max_size": 2, "memory_mib": -1},
            id="refused-by-the-api-not-here",
        ),
    ],
)
def test_the_pool_create_body(options: dict[str, Any], changes: dict[str, Any]) -> None:
    assert create_body(**(POOL_OPTIONS | options)) == POOL_BODY | changes


@pytest.mark.parametrize(
    ("sizes", "body"),
    [
        ((None, None, None), {}),
        ((4, None, 8), {"size": 4, "max_size": 8}),
        ((0, 0, None), {"size": 0, "min_size": 0}),
        ((None, -1, None), {"min_size": -1}),
    ],
    ids=["nothing", "size-and-max", "zeros-are-given", "refused-by-the-api-not-here"],
)
def test_the_pool_resize_body_holds_what_is_given(
    sizes: tuple[int | None, int | None, int | None], body: dict[str, int]
) -> None:
    assert resize_body(*sizes) == body


def test_a_request_field_the_model_does_not_have_is_a_mistake() -> None:
    with pytest.raises(TypeError, match="ProjectCreate has no field nmae"):
        request_json(ProjectCreate, nmae="shop")


def answering(status: int, body: Any) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(handler))


def guest(node_id: str, state: str, **fields: Any) -> PoolNodeRead:
    defaults: dict[str, Any] = {
        "kind": "lxc",
        "pve_node": None,
        "vmid": None,
        "address": None,
        "message": None,
        "workflow_id": f"pool-node/{node_id}",
        "created_at": CREATED,
        "ready_at": None,
        "finished_at": None,
    }
    return PoolNodeRead(node_id=node_id, state=state, **(defaults | fields))


def pool(nodes: list[PoolNodeRead], **fields: Any) -> NodePoolRead:
    defaults: dict[str, Any] = {
        "id": "pool_1",
        "name": "web",
        "kind": "lxc",
        "template_vmid": 9000,
        "spec": {},
        "min_size": 1,
        "max_size": 5,
        "size": 2,
        "workflow_id": "pool/pool_1",
        "created_at": CREATED,
        "updated_at": CREATED,
        "delete_requested_at": None,
        "removed_at": None,
    }
    return NodePoolRead(nodes=nodes, **(defaults | fields))


def test_a_pool_is_read_as_the_apis_model_and_printed() -> None:
    nodes = [
        guest("node_a", "READY", pve_node="pve1", vmid=101, address="10.0.0.5"),
        guest("node_b", "FAILED", message="clone on pve1: no space"),
        guest("node_c", "READY"),
    ]
    served = [pool(nodes, delete_requested_at=CREATED).model_dump(mode="json")]

    with answering(200, served) as api:
        [read] = call(api, "GET", "/v1/node-pools", NODE_POOLS, context="cannot list the node pools")

    assert summary(read) == (
        f"{'web':<20} {'pool_1':<18} lxc   template 9000   size 2 (1-5) (deleting): 1 FAILED, 2 READY"
    )
    assert node_lines(read) == [
        "  node_a             READY            pve1/101     10.0.0.5",
        "  node_b             FAILED           -/-          -  clone on pve1: no space",
        "  node_c             READY            -/-          -",
    ]


def deployment(status: DeploymentStatus, **fields: Any) -> DeploymentRead:
    defaults: dict[str, Any] = {
        "id": "dep_1",
        "service_id": "svc_1",
        "environment_id": "env_1",
        "source": {"kind": "upload"},
        "builder": None,
        "commit_sha": None,
        "commit_message": None,
        "commit_author": None,
        "image": None,
        "image_digest": None,
        "image_ref": None,
        "failed_step": None,
        "message": None,
        "workflow_id": "deploy/svc_1/production/dep_1",
        "created_at": CREATED,
        "updated_at": CREATED,
        "finished_at": None,
    }
    return DeploymentRead(status=status, **(defaults | fields))


@pytest.mark.parametrize(
    ("served", "line"),
    [
        (deployment(DeploymentStatus.QUEUED), "dep_1 QUEUED (created 2026-12-07 18:01:45)"),
        (
            deployment(DeploymentStatus.FAILED, failed_step="submit", message="Temporal is unavailable"),
            "dep_1 FAILED at submit: Temporal is unavailable (created 2026-12-07 18:01:45)",
        ),
    ],
    ids=["queued", "failed-at-a-step"],
)
def test_a_deployment_is_read_as_the_apis_model(served: DeploymentRead, line: str) -> None:
    with answering(200, served.model_dump(mode="json")) as api:
        read = call(api, "GET", "/v1/deployments/dep_1", DeploymentRead, context="cannot read")

    assert read.status is served.status
    assert describe_deployment(read) == line


def list_projects(api: httpx.Client) -> list[ProjectRead]:
    return call(api, "GET", "/v1/projects", PROJECTS, context="cannot list the projects")


def test_an_answer_that_is_not_the_apis_model_is_an_error_to_act_on() -> None:
    with answering(200, [{"id": "prj_1"}]) as api, pytest.raises(ApiError) as raised:
        list_projects(api)

    assert str(raised.value) == (
        "cannot list the projects: the API at http://api.test answered what this CLI cannot read "
        "(0.name: Field required); are the CLI and the API the same version?"
    )


def test_a_refusal_is_the_apis_reason() -> None:
    with (
        answering(422, {"detail": "name: String should match pattern"}) as api,
        pytest.raises(ApiError) as raised,
    ):
        list_projects(api)

    assert (str(raised.value), raised.value.status) == (
        "cannot list the projects: name: String should match pattern (HTTP 422)",
        422,
    )
