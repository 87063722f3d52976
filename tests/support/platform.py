"""The whole platform, started the way the README starts it (`dockyard up`), on its own ports.

Registered as a pytest plugin by tests/conftest.py: the `platform` and `app_images` fixtures start it
once per run, on first use (end-to-end tests and benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from core.settings import load_settings
from core.temporal import connect
from domain.crash_points import CRASH_FILE_VARIABLE
from tests.support.components import REPO_ROOT, TESTS_CACHE_ENV
from tests.support.images import SESSION_REGISTRIES, build_http_image
from tests.support.registry import free_port

DOCKYARD = [sys.executable, "-m", "cli"]
FINAL = {"ACTIVE", "FAILED", "SUPERSEDED", "CANCELLED", "REMOVED"}
CRASH_FILE_NAME = "crash-point"


@dataclass
class Platform:
    env: dict[str, str]
    state_dir: Path
    api: httpx.Client
    edge_url: str
    registry_host: str
    registry_auth: dict[str, str]
    service_ids: list[str] = field(default_factory=list)

    def secrets(self) -> dict[str, str]:
        lines = (self.state_dir / "secrets.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def create_service(self, project: str, name: str, image: str, **fields: Any) -> dict[str, Any]:
        created = self.api.post("/v1/projects", json={"name": project})
        assert created.status_code == 201, created.text
        service = self.api.post(
            f"/v1/projects/{created.json()['id']}/services", json={"name": name, "image": image, **fields}
        )
        assert service.status_code == 201, service.text
        self.service_ids.append(service.json()["id"])
        return service.json()  # type: ignore[no-any-return]

    def deploy(self, service_id: str, **body: Any) -> dict[str, Any]:
        response = self.api.post(f"/v1/services/{service_id}/deployments", json=body)
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_final(self, deployment_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            deployment = self.api.get(f"/v1/deployments/{deployment_id}").json()
            if deployment["status"] in FINAL or time.monotonic() > deadline:
                return deployment  # type: ignore[no-any-return]
            time.sleep(0.1)

    async def temporal(self) -> Client:
        """A client of the platform's Temporal that reads its (encrypted) payloads."""
        settings = load_settings(
            temporal_address=self.env["DOCKYARD_TEMPORAL_ADDRESS"],
            payload_key=self.secrets()["DOCKYARD_PAYLOAD_KEY"],
        )
        return await connect(settings)

    def wait_released(self, deployment: dict[str, Any]) -> None:
        """Until the deployment's release workflow is over: ACTIVE comes at the cut-over, and the release
        then watches the new replicas through the stability window and removes the old ones."""

        async def result() -> None:
            client = await self.temporal()
            with contextlib.suppress(WorkflowFailureError):  # a failed deploy is over too
                await client.get_workflow_handle(deployment["workflow_id"]).result()

        asyncio.run(result())

    def traefik_servers(self, service: dict[str, Any]) -> list[str]:
        """The servers Traefik routes the service to now (its own API, UP or not), sorted."""
        url = f"{self.env['DOCKYARD_TRAEFIK_API_URL']}/api/http/services"
        prefix = service["id"].replace("_", "-") + "-"
        for item in httpx.get(url, timeout=5).json():
            if item["name"].startswith(prefix) and item["name"].endswith("@http"):
                return sorted(server["url"] for server in item["loadBalancer"]["servers"])
        return []

    def get(self, service: dict[str, Any], path: str = "/") -> httpx.Response:
        """A request through Traefik, with the service's hostname."""
        host = service["urls"]["production"].split("://", 1)[1].split(":")[0]
        return httpx.get(f"{self.edge_url}{path}", headers={"Host": host}, timeout=10)


def platform_env(state_dir: Path) -> dict[str, str]:
    ports = {
        name: free_port()
        for name in (
            "api",
            "gateway",
            "temporal",
            "ui",
            "registry",
            "redis",
            "http",
            "https",
            "traefik",
            "agent",
            "prometheus",
        )
    }
    SESSION_REGISTRIES.add(f"127.0.0.1:{ports['registry']}")
    return {
        "DOCKYARD_STATE_DIR": str(state_dir),
        "DOCKYARD_API_PORT": str(ports["api"]),
        "DOCKYARD_AGENT_GATEWAY_PORT": str(ports["gateway"]),
        "DOCKYARD_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "DOCKYARD_TEMPORAL_UI_URL": f"http://127.0.0.1:{ports['ui']}",
        "DOCKYARD_REGISTRY_HOST": f"127.0.0.1:{ports['registry']}",
        "DOCKYARD_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "DOCKYARD_EDGE_HTTP_URL": f"http://127.0.0.1:{ports['http']}",
        "DOCKYARD_EDGE_HTTPS_URL": f"https://127.0.0.1:{ports['https']}",
        "DOCKYARD_TRAEFIK_API_URL": f"http://127.0.0.1:{ports['traefik']}",
        "DOCKYARD_AGENT_URL": f"http://127.0.0.1:{ports['agent']}",
        "DOCKYARD_PROMETHEUS_URL": f"http://127.0.0.1:{ports['prometheus']}",
        # Scraped every 2 s: a metrics test sees a load within seconds, not a quarter of a minute.
        "DOCKYARD_PROMETHEUS_SCRAPE_INTERVAL_SECONDS": "2",
        # The tests' git repositories: directories (file://) and a plain-HTTP git server on loopback.
        "DOCKYARD_ALLOW_FILE_REPOSITORIES": "true",
        "DOCKYARD_INSECURE_REPOSITORY_HOSTS": "127.0.0.1",
        "DOCKYARD_HEALTH_TIMEOUT_SECONDS": "30",
        # Shorter than the default 10 s: every release keeps its previous replicas through the window,
        # and many tests wait for them to go. Tests of the window itself set their own.
        "DOCKYARD_STABILITY_WINDOW_SECONDS": "3",
        # The API dies at the submission point this file names, once (domain/crash_points.py); absent: never.
        CRASH_FILE_VARIABLE: str(state_dir / CRASH_FILE_NAME),
    }


def process_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a `dockyard` process a test starts: the test's own without its DOCKYARD_*
    variables (an in-process CLI test may have exported a local installation's secrets there, which
    would win over the platform's own secrets.env), then `env`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")} | env


def run_dockyard(
    env: dict[str, str], *args: str, timeout: float = 300, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DOCKYARD, *args],
        env=process_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


@pytest.fixture(scope="session")
def platform(docker_client: docker.DockerClient, workdir: Path) -> Iterator[Platform]:
    with platform_with(docker_client, workdir / "platform", {}) as platform:
        yield platform


def assert_nothing_left_running(state_dir: Path, client: docker.DockerClient, service_ids: list[str]) -> None:
    """After `dockyard down` (or Ctrl-C): no process it started and no replica it ran is alive."""
    alive = []
    for pid_file in (state_dir / "run").glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text()), 0)
            alive.append(pid_file.stem)
        except ProcessLookupError:
            pass
    assert alive == [], f"processes left running: {alive}"
    running = [
        c.name
        for service_id in service_ids
        for c in client.containers.list(filters={"label": f"dockyard.service={service_id}"})
    ]
    assert running == [], f"replicas left running: {running}"


@pytest.fixture(scope="session")
def app_images(docker_client: docker.DockerClient, platform: Platform) -> AppImages:
    return AppImages(docker_client, platform)


class AppImages:
    """Tiny HTTP apps built here (busybox base, no network) and pushed to the platform's registry."""

    def __init__(self, client: docker.DockerClient, platform: Platform) -> None:
        self.client = client
        self.platform = platform

    def push(self, repository: str, tag: str, body: str, start_delay: float = 0) -> str:
        target = f"{self.platform.registry_host}/{repository}"
        build_http_image(self.client, f"{target}:{tag}", body, start_delay=start_delay)
        for line in self.client.images.push(
            target, tag=tag, auth_config=self.platform.registry_auth, stream=True, decode=True
        ):
            assert "error" not in line, line
        return f"{target}:{tag}"


@contextlib.contextmanager
def platform_with(
    docker_client: docker.DockerClient, state_dir: Path, extra_env: dict[str, str]
) -> Iterator[Platform]:
    """`dockyard up --detach` with `extra_env` added to its settings (the session's `platform` has none;
    a test module may start its own, e.g. with a Proxmox cluster to provision from); stopped at the
    end, nothing left running."""
    # The platforms of one test run share the Debian rootfs their build base image is made from (one
    # debootstrap per run, not one per platform: the session's workdir sets TESTS_CACHE_ENV).
    cache_dir = os.environ.get(TESTS_CACHE_ENV) or str(state_dir.parent / "cache")
    env = platform_env(state_dir) | {"DOCKYARD_CACHE_DIR": cache_dir} | extra_env
    started = run_dockyard(env, "up", "--detach")
    if started.returncode != 0:
        log = (state_dir / "logs" / "up.log").read_text(errors="replace")
        pytest.fail(f"dockyard up failed:\n{started.stdout}\n{started.stderr}\n{log}", pytrace=False)
    secrets = dict(
        line.split("=", 1) for line in (state_dir / "secrets.env").read_text().splitlines() if "=" in line
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{env['DOCKYARD_API_PORT']}",
        headers={"Authorization": f"Bearer {secrets['DOCKYARD_API_TOKEN']}"},
        timeout=30,
    )
    platform = Platform(
        env=env,
        state_dir=state_dir,
        api=api,
        edge_url=env["DOCKYARD_EDGE_HTTP_URL"],
        registry_host=env["DOCKYARD_REGISTRY_HOST"],
        registry_auth={"username": "dockyard", "password": secrets["DOCKYARD_REGISTRY_PASSWORD"]},
    )
    try:
        yield platform
    finally:
        made = set(platform.service_ids) | every_service(api)
        api.close()
        stopped = run_dockyard(env, "down")
        assert stopped.returncode == 0, stopped.stderr
    assert_nothing_left_running(state_dir, docker_client, sorted(made))
    remove_replicas(docker_client, made)


def every_service(api: httpx.Client) -> set[str]:
    """The ids of every service the platform has, as far as its API answers."""
    try:
        projects = api.get("/v1/projects").json()
        return {
            service["id"]
            for project in projects
            for service in api.get(f"/v1/projects/{project['id']}/services").json()
        }
    except (httpx.HTTPError, TypeError, KeyError, ValueError):
        return set()


def remove_replicas(client: docker.DockerClient, service_ids: set[str]) -> None:
    """The stopped containers of a platform that is down: `dockyard down` keeps them for the next `up`;
    the tests that made them are over."""
    for service_id in service_ids:
        for container in client.containers.list(
            all=True, filters={"label": f"dockyard.service={service_id}"}
        ):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True)
