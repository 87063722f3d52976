"""Builds from code, end to end: real sample applications (tests/fixtures/apps/) uploaded or cloned, built
by the platform (its planner or their own Dockerfile), pushed to its registry and answering through Traefik.

Every test shares one platform (`dockyard up`) and its BuildKit cache, so later builds of the same runtime
reuse the Debian packages installed by earlier ones.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from cli.deploy import pack
from tests.support.platform import Platform

pytestmark = pytest.mark.timeout(900)

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps"
BUILD_SECONDS = 600  # a cold build installs a runtime from Debian and dependencies from PyPI or npm
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@dataclass(frozen=True)
class SampleApp:
    name: str
    body: str
    builder: str
    build_steps: tuple[str, ...]  # what the kept build log shows was run

    def __str__(self) -> str:
        return self.name


SAMPLE_APPS = [
    SampleApp(
        "python-pip",
        "python-pip sample: Flask under gunicorn",
        "planner",
        (
            "apt-get install -y --no-install-recommends python3 python3-venv",
            "pip install -r requirements.txt",
        ),
    ),
    SampleApp(
        "python-uv",
        "python-uv sample: FastAPI under uvicorn, locked by uv",
        "planner",
        ("COPY pyproject.toml uv.lock .python-version ./", "uv sync --no-dev --frozen --no-install-project"),
    ),
    SampleApp(
        "node-npm",
        "node-npm sample: Express on Node.js",
        "planner",
        ("COPY package.json package-lock.json ./", "npm ci"),
    ),
    SampleApp(
        "bun",
        "bun sample: Bun.serve, one minute is 1m",
        "planner",
        ("npm install -g bun@1", "COPY package.json bun.lock ./", "bun i --no-save"),
    ),
    SampleApp(
        "go",
        "go sample: net/http, compiled by the planner's go build",
        "planner",
        ("apt-get install -y --no-install-recommends golang-go", "go mod download", "go build -o out"),
    ),
    SampleApp(
        "static",
        "static sample: index.html served by Caddy",
        "planner",
        ("apt-get install -y --no-install-recommends caddy", "/assets/Caddyfile"),
    ),
    SampleApp(
        "dockerfile",
        "dockerfile sample: busybox httpd, built from the app's own Dockerfile",
        "dockerfile",
        ("FROM docker.io/dockyard/debian:bookworm", "apt-get install -y --no-install-recommends busybox"),
    ),
    SampleApp(
        "procfile",
        "procfile sample: the web process of the Procfile",
        "planner",
        ("pip install -r requirements.txt",),
    ),
]


# --- helpers ---------------------------------------------------------------------------------------------


def create_code_service(platform: Platform, project: str, name: str, **fields: Any) -> dict[str, Any]:
    """A service with no image: deployed by upload, or from `repo_url` when given."""
    created = platform.api.post("/v1/projects", json={"name": project})
    assert created.status_code == 201, created.text
    service = platform.api.post(
        f"/v1/projects/{created.json()['id']}/services", json={"name": name, **fields}
    )
    assert service.status_code == 201, service.text
    platform.service_ids.append(service.json()["id"])
    return service.json()  # type: ignore[no-any-return]


def upload(platform: Platform, service_id: str, app: Path) -> dict[str, Any]:
    """What `dockyard deploy PATH` sends."""
    response = platform.api.post(
        f"/v1/services/{service_id}/deployments/upload",
        params={"environment": "production"},
        content=pack(app),
        headers={"Content-Type": "application/gzip"},
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def build_log(platform: Platform, deployment_id: str) -> dict[str, Any]:
    response = platform.api.get(f"/v1/deployments/{deployment_id}/build-logs")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def containers_of(client: docker.DockerClient, deployment_id: str) -> list[str]:
    """Names from the list answer alone (sparse): a container removed meanwhile is no error."""
    listed = client.containers.list(
        all=True, sparse=True, filters={"label": f"dockyard.deployment={deployment_id}"}
    )
    return [c.attrs["Names"][0].lstrip("/") for c in listed]


def eventually_gone(client: docker.DockerClient, deployment_id: str, timeout: float = 30) -> bool:
    """Replaced replicas are removed after a drain: wait for it."""
    deadline = time.monotonic() + timeout
    while containers_of(client, deployment_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def registry_manifest(platform: Platform, repository: str, reference: str) -> int:
    """The registry's status for a manifest (200: it is there, 404: it is not)."""
    response = httpx.head(
        f"http://{platform.registry_host}/v2/{repository}/manifests/{reference}",
        auth=(platform.registry_auth["username"], platform.registry_auth["password"]),
        headers={"Accept": MANIFEST_TYPES},
        timeout=10,
    )
    return response.status_code


def assert_built_and_pinned(platform: Platform, deployment: dict[str, Any]) -> str:
    """The deployment runs the image its build pushed, pinned by digest; answers the image's repository."""
    digest, image_ref = deployment["image_digest"], deployment["image_ref"]
    assert digest and digest.startswith("sha256:"), deployment
    assert image_ref.startswith(f"{platform.registry_host}/") and image_ref.endswith(f"@{digest}"), deployment
    repository = image_ref.removeprefix(f"{platform.registry_host}/").split("@")[0]
    assert registry_manifest(platform, repository, digest) == 200
    assert registry_manifest(platform, repository, deployment["id"].replace("_", "-")) == 200  # its own tag
    return repository


def served(platform: Platform, service: dict[str, Any]) -> str:
    response = platform.get(service)
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.text


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Dockyard Tests", "-c", "user.email=tests@dockyard.invalid"]
    done = subprocess.run(
        ["git", "-C", str(repo), *identity, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


# --- sample applications ---------------------------------------------------------------------------------


@pytest.mark.parametrize("app", SAMPLE_APPS, ids=str)
def test_sample_app_is_built_deployed_and_served_through_traefik(
    platform: Platform, docker_client: docker.DockerClient, app: SampleApp
) -> None:
    service = create_code_service(platform, f"build-{app.name}", app.name)

    deployment = platform.wait_final(upload(platform, service["id"], APPS / app.name)["id"], BUILD_SECONDS)

    assert deployment["status"] == "ACTIVE", deployment
    assert deployment["source"]["kind"] == "upload"
    assert app.body in served(platform, service)
    assert_built_and_pinned(platform, deployment)
    assert len(containers_of(docker_client, deployment["id"])) == 1

    log = build_log(platform, deployment["id"])
    assert log["complete"] is True
    text = "\n".join(log["lines"])
    assert log["lines"][0].startswith("==> building "), log["lines"][:3]
    for step in app.build_steps:
        assert step in text, f"{step!r} not in the build log:\n{text}"
    assert log["lines"][-1] == f"==> pushed {deployment['image_ref']}"

    # Which builder made the image: the app's own Dockerfile wins over the planner.
    assert deployment["builder"] == app.builder, deployment


# --- a build that fails ----------------------------------------------------------------------------------


def test_failed_build_ends_failed_with_its_output_and_the_previous_version_keeps_serving(
    platform: Platform, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    good = tmp_path / "good"
    shutil.copytree(APPS / "broken-build", good)
    (good / "build.js").write_text('console.log("bundled server.js");\n')
    server = good / "server.js"
    server.write_text(server.read_text().replace("this must never be served", "the good version"))
    service = create_code_service(platform, "build-broken", "broken")
    first = platform.wait_final(upload(platform, service["id"], good)["id"], BUILD_SECONDS)
    assert first["status"] == "ACTIVE", first
    assert served(platform, service).strip() == "broken-build sample: the good version"

    failed = platform.wait_final(upload(platform, service["id"], APPS / "broken-build")["id"], BUILD_SECONDS)

    assert failed["status"] == "FAILED", failed
    assert failed["failed_step"] == "build"
    message = failed["message"]
    # "build failed at step [stage-0 7/7] RUN --mount=... npm run build: exit code: 1", then the output's tail
    summary = message.splitlines()[0]
    assert summary.startswith("build failed at step [") and "npm run build: exit code: 1" in summary, message
    assert "last " in message and "lines of output" in message, message
    assert 'entry: "server.js",,' in message and "SyntaxError: Unexpected token ','" in message, message
    assert failed["image_digest"] is None and failed["image_ref"] is None

    # The good version keeps serving; nothing of the failed one runs or sits in the registry.
    assert served(platform, service).strip() == "broken-build sample: the good version"
    statuses = {
        d["id"]: d["status"] for d in platform.api.get(f"/v1/services/{service['id']}/deployments").json()
    }
    assert statuses == {first["id"]: "ACTIVE", failed["id"]: "FAILED"}
    assert containers_of(docker_client, failed["id"]) == []
    assert len(containers_of(docker_client, first["id"])) == 1
    repository = assert_built_and_pinned(platform, first)
    assert registry_manifest(platform, repository, failed["id"].replace("_", "-")) == 404

    log = build_log(platform, failed["id"])
    assert log["complete"] is True
    assert any("SyntaxError" in line for line in log["lines"]), log["lines"]
    assert log["lines"][-1].startswith("==> build failed at step "), log["lines"][-3:]


def test_malformed_nixpacks_toml_fails_naming_the_file_the_key_and_the_reason(
    platform: Platform, docker_client: docker.DockerClient
) -> None:
    service = create_code_service(platform, "build-bad-config", "bad-config")

    failed = platform.wait_final(upload(platform, service["id"], APPS / "bad-config")["id"], BUILD_SECONDS)

    assert failed["status"] == "FAILED", failed
    assert failed["failed_step"] == "build"
    assert "nixpacks.toml: phases.build.cmds: expected a list of strings" in failed["message"], failed
    assert failed["image_digest"] is None
    assert containers_of(docker_client, failed["id"]) == []
    assert platform.get(service).status_code == 404  # nothing was ever routed
    assert build_log(platform, failed["id"])["complete"] is True


# --- a git repository as the source ----------------------------------------------------------------------


def test_repository_service_builds_the_branch_head_and_a_given_commit(
    platform: Platform, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    repo = tmp_path / "site"
    shutil.copytree(APPS / "static", repo)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "first version")
    first_commit = git(repo, "rev-parse", "HEAD")
    service = create_code_service(
        platform, "build-repo", "site", repo_url=f"file://{repo}", repo_branch="main"
    )

    first = platform.wait_final(platform.deploy(service["id"])["id"], BUILD_SECONDS)
    assert first["status"] == "ACTIVE", first
    source = first["source"]
    assert (source["kind"], source["repo_url"], source["ref"]) == ("repo", f"file://{repo}", "main"), source
    assert "static sample: index.html served by Caddy" in served(platform, service)

    index = repo / "index.html"
    index.write_text(index.read_text().replace("static sample", "static sample, second commit"))
    git(repo, "commit", "--quiet", "-am", "second version")
    second = platform.wait_final(platform.deploy(service["id"])["id"], BUILD_SECONDS)
    assert second["status"] == "ACTIVE", second
    assert "static sample, second commit: index.html served by Caddy" in served(platform, service)
    assert second["image_digest"] != first["image_digest"]

    # A commit, as a rollback names it.
    again = platform.wait_final(platform.deploy(service["id"], ref=first_commit)["id"], BUILD_SECONDS)
    assert again["status"] == "ACTIVE", again
    assert again["source"]["ref"] == first_commit
    assert "static sample: index.html served by Caddy" in served(platform, service)
    assert eventually_gone(docker_client, second["id"])


# --- live build logs -------------------------------------------------------------------------------------


LIVE_BUILD_COMMAND = 'for step in 1 2 3; do echo "live step $step"; sleep 1; done && caddy version'


def follow_build_log(platform: Platform, deployment_id: str) -> Iterator[tuple[str, str | None]]:
    """(event, line) for each Server-Sent Event of `build-logs?follow=true`, as each arrives."""
    with platform.api.stream(
        "GET",
        f"/v1/deployments/{deployment_id}/build-logs",
        params={"follow": "true"},
        timeout=httpx.Timeout(30, read=BUILD_SECONDS),
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        event, data = "message", None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
            elif line == "":
                yield event, data if event == "message" else None
                event, data = "message", None


def test_build_log_follows_live_over_sse_and_ends_with_an_end_event(
    platform: Platform, tmp_path: Path
) -> None:
    # A build command the static provider does not have (the service's build_command) that prints a line a
    # second and needs the setup phase's caddy; a fresh body so BuildKit's cache cannot skip the step.
    app = tmp_path / "live"
    shutil.copytree(APPS / "static", app)
    body = f"static sample, followed live {uuid.uuid4().hex}"
    (app / "index.html").write_text(body + "\n")
    service = create_code_service(platform, "build-live", "live", build_command=LIVE_BUILD_COMMAND)
    deployment = upload(platform, service["id"], app)

    streamed: list[str] = []
    arrivals: dict[str, tuple[float, str]] = {}  # "live step N" -> (when it arrived, deployment status then)
    events = []
    for event, line in follow_build_log(platform, deployment["id"]):
        events.append(event)
        if line is None:
            continue
        streamed.append(line)
        if (step := re.search(r"live step \d$", line)) and step[0] not in arrivals:
            status = platform.api.get(f"/v1/deployments/{deployment['id']}").json()["status"]
            arrivals[step[0]] = (time.monotonic(), status)

    assert events[-1] == "end" and events.count("end") == 1, events[-3:]
    assert [status for _, status in arrivals.values()] == ["BUILDING"] * 3, arrivals  # long before ACTIVE
    assert arrivals["live step 3"][0] - arrivals["live step 1"][0] > 1.5, (
        arrivals
    )  # as printed, not at the end
    final = platform.wait_final(deployment["id"], BUILD_SECONDS)
    assert final["status"] == "ACTIVE", final
    assert served(platform, service).strip() == body
    assert streamed == build_log(platform, deployment["id"])["lines"]  # the kept log is what was streamed
    assert streamed[-1] == f"==> pushed {final['image_ref']}"
