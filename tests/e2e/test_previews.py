"""Pull-request previews end to end: a real repository served over HTTP on loopback, the providers' real
pull-request payloads signed with the project's secret, the whole platform (`dockyard up`) building and
serving each preview through Traefik, and a closed request's preview torn down: its route, its replicas,
its image and its records gone, while production keeps serving."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from core.webhooks import Provider
from tests.support.git_server import GitServer, WorkingCopy
from tests.support.platform import Platform
from tests.support.webhooks import Delivery, pull_request_delivery, push_delivery

pytestmark = pytest.mark.timeout(900)

APP = (Path(__file__).resolve().parents[1] / "fixtures" / "apps" / "static" / "index.html").read_text()
BUILD_SECONDS = 600  # the first static build installs Caddy from Debian; later ones reuse the layers
PRODUCTION = "static sample: index.html served by Caddy"
PREVIEW = "static sample, pull request 7: index.html served by Caddy"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
)


@pytest.fixture
def git_server() -> Iterator[GitServer]:
    with GitServer() as server:
        yield server


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def served(platform: Platform, hostname: str) -> httpx.Response:
    return httpx.get(f"{platform.edge_url}/", headers={"Host": hostname}, timeout=10)


def host_of(url: str) -> str:
    return url.split("://", 1)[1].split(":")[0]


def deliver(platform: Platform, webhook: dict[str, Any], provider: Provider, delivery: Delivery) -> Any:
    url = webhook["urls"][provider.value]
    path = url[url.index("/v1/") :]
    return ok(platform.api.post(path, content=delivery.body, headers=delivery.headers), 202)


def environments(platform: Platform, project_id: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in ok(platform.api.get(f"/v1/projects/{project_id}/environments"))}


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not after {timeout:g}s: {what}"
        time.sleep(0.25)


def test_a_pull_request_gets_a_preview_that_is_torn_down_when_it_closes(
    platform: Platform, docker_client: docker.DockerClient, git_server: GitServer, tmp_path: Path
) -> None:
    repo_url = git_server.create_repo("acme/site")
    work = WorkingCopy(tmp_path / "site", origin=repo_url)
    main_sha = work.write({"index.html": APP}).commit("First version")
    work.push("main")

    project = ok(platform.api.post("/v1/projects", json={"name": "previews"}), 201)
    service = ok(
        platform.api.post(
            f"/v1/projects/{project['id']}/services",
            json={"name": "site", "repo_url": repo_url, "repo_branch": "main"},
        ),
        201,
    )
    platform.service_ids.append(service["id"])
    ok(platform.api.patch(f"/v1/projects/{project['id']}", json={"previews_enabled": True}))
    webhook = ok(platform.api.get(f"/v1/projects/{project['id']}/webhook"))

    # Production: a push to main.
    pushed = deliver(
        platform,
        webhook,
        Provider.GITHUB,
        push_delivery(Provider.GITHUB, webhook["secret"], repo_url=repo_url, branch="main", sha=main_sha),
    )
    [production_deploy] = pushed["deployment_ids"]
    assert platform.wait_final(production_deploy, BUILD_SECONDS)["status"] == "ACTIVE"
    production_host = host_of(ok(platform.api.get(f"/v1/services/{service['id']}"))["urls"]["production"])
    assert PRODUCTION in served(platform, production_host).text

    # A pull request from branch `login`: its own environment, URL and code.
    work.branch("login").write({"index.html": APP.replace("static sample", "static sample, pull request 7")})
    head = work.commit("Say which pull request this is")
    work.push()
    opened = deliver(
        platform,
        webhook,
        Provider.GITHUB,
        pull_request_delivery(
            Provider.GITHUB,
            "opened",
            webhook["secret"],
            repo_url=repo_url,
            number=7,
            head_branch="login",
            head_sha=head,
        ),
    )
    [preview_deploy] = opened["deployment_ids"]
    deployment = platform.wait_final(preview_deploy, BUILD_SECONDS)
    assert deployment["status"] == "ACTIVE", deployment
    assert deployment["commit_sha"] == head
    preview = environments(platform, project["id"])["pr-7"]
    preview_host = host_of(ok(platform.api.get(f"/v1/services/{service['id']}"))["urls"]["pr-7"])
    assert preview_host == production_host.replace("-production.", "-pr-7.")
    assert PREVIEW in served(platform, preview_host).text
    assert PRODUCTION in served(platform, production_host).text
    image = deployment["image_ref"]
    assert registry_status(platform, image) == 200

    # Closed: the preview goes, production stays.
    deliver(
        platform,
        webhook,
        Provider.GITHUB,
        pull_request_delivery(
            Provider.GITHUB,
            "closed",
            webhook["secret"],
            repo_url=repo_url,
            number=7,
            head_branch="login",
            head_sha=head,
        ),
    )
    wait_until(lambda: "pr-7" not in environments(platform, project["id"]), 120, "pr-7 deleted")
    assert served(platform, preview_host).status_code == 404
    labels = f"dockyard.environment={preview['id']}"
    assert docker_client.containers.list(all=True, filters={"label": labels}) == []
    assert registry_status(platform, image) == 404
    assert PRODUCTION in served(platform, production_host).text
    assert ok(platform.api.get(f"/v1/deployments/{production_deploy}"))["status"] == "ACTIVE"


def registry_status(platform: Platform, image_ref: str) -> int:
    repository, digest = image_ref.removeprefix(f"{platform.registry_host}/").split("@")
    response = httpx.head(
        f"http://{platform.registry_host}/v2/{repository}/manifests/{digest}",
        auth=(platform.registry_auth["username"], platform.registry_auth["password"]),
        headers={"Accept": MANIFEST_TYPES},
        timeout=10,
    )
    return response.status_code
