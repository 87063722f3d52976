"""Restarts keep apps serving: after `dockyard down` + `dockyard up`, and after a simulated reboot (every
process of the platform SIGKILLed and every replica's container killed, then `dockyard up`), every ACTIVE
service answers through Traefik again, on every replica, with no deploy. Docker publishes a restarted
container on a new port, so this holds only if the routes follow the replicas (the fleet watch).

The platform here is a module's own (it is stopped and killed), on the machine's Docker Engine, which it
does not own: a reboot's engine restart is covered on a node's own engine in test_engine_restarts.py."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.platform import AppImages, Platform, platform_with, run_dockyard

pytestmark = pytest.mark.timeout(900)

SERVICES = 3
REPLICAS = 2
BACK_WITHIN_SECONDS = 30  # the bound: every ACTIVE service answers again within this, no deploy
DEPLOY_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def own_platform(docker_client: docker.DockerClient, workdir: Path) -> Iterator[Platform]:
    with platform_with(docker_client, workdir / "restarts", {}) as platform:
        yield platform


def serving(platform: Platform, service: dict[str, Any], body: str) -> str | None:
    """None when the service answers `body` through Traefik and each of its REPLICAS servers answers it
    directly; else what is wrong."""
    try:
        through = platform.get(service)
        if through.status_code != 200 or through.text.strip() != body:
            return f"through Traefik: HTTP {through.status_code} {through.text.strip()[:60]!r}"
        servers = platform.traefik_servers(service)
        if len(servers) != REPLICAS:
            return f"Traefik routes to {servers}"
        for server in servers:
            direct = httpx.get(server, timeout=2)
            if direct.text.strip() != body:
                return f"{server}: HTTP {direct.status_code}"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def wait_all_serving(platform: Platform, services: dict[str, dict[str, Any]]) -> float:
    """Seconds until every service serves its body on every replica; fails past BACK_WITHIN_SECONDS."""
    started = time.monotonic()
    while True:
        problems = {body: p for body, service in services.items() if (p := serving(platform, service, body))}
        elapsed = time.monotonic() - started
        if not problems:
            return elapsed
        if elapsed > BACK_WITHIN_SECONDS:
            pytest.fail(f"not serving again {elapsed:.0f} s after the platform was up: {problems}")
        time.sleep(0.2)


def deployment_ids(platform: Platform, services: dict[str, dict[str, Any]]) -> dict[str, str]:
    found = {}
    for service in services.values():
        for deployment in platform.api.get(f"/v1/services/{service['id']}/deployments").json():
            found[deployment["id"]] = deployment["status"]
    return found


def up_again(platform: Platform) -> float:
    """`dockyard up --detach` on the same state; answers how long it took to be ready."""
    started = time.monotonic()
    result = run_dockyard(platform.env, "up", "--detach")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return time.monotonic() - started


def kill_everything(platform: Platform, client: docker.DockerClient, service_ids: list[str]) -> None:
    """What a power cut does: the supervisor frozen first (so it neither restarts nor stops its children),
    every process it started SIGKILLed, then itself; the replicas' containers killed."""
    supervisor = int((platform.state_dir / "dockyard.pid").read_text())
    children = [int(path.read_text()) for path in (platform.state_dir / "run").glob("*.pid")]
    os.kill(supervisor, signal.SIGSTOP)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os.kill(supervisor, signal.SIGKILL)
    for pid in [*children, supervisor]:
        wait_gone(pid)
    for service_id in service_ids:
        for container in client.containers.list(filters={"label": f"dockyard.service={service_id}"}):
            container.kill()


def wait_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return
        if stat.rsplit(")", 1)[1].split()[0] == "Z":  # dead, waiting for its parent to reap it
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} survived SIGKILL")


def test_services_answer_again_after_down_up_and_after_a_reboot(
    own_platform: Platform, docker_client: docker.DockerClient
) -> None:
    platform = own_platform
    images = AppImages(docker_client, platform)
    services: dict[str, dict[str, Any]] = {}
    versions: dict[str, tuple[str, str]] = {}
    for index in range(SERVICES):
        name = f"back{index}"
        v1 = images.push(f"e2e/{name}", "v1", f"{name} v1")
        v2 = images.push(f"e2e/{name}", "v2", f"{name} v2")
        services[f"{name} v2"] = platform.create_service(
            f"e2e-{name}", name, v1, replicas=REPLICAS, health_check_path="/healthz"
        )
        versions[f"{name} v2"] = (v1, v2)
    for release in (0, 1):  # released more than once: the route holds the second deploy's ports
        started = [platform.deploy(services[body]["id"], image=versions[body][release]) for body in services]
        for deployment in started:
            final = platform.wait_final(deployment["id"], DEPLOY_TIMEOUT_SECONDS)
            assert final["status"] == "ACTIVE", final
        for deployment in started:
            platform.wait_released(deployment)
    wait_all_serving(platform, services)
    released = deployment_ids(platform, services)
    routed_before = {body: platform.traefik_servers(service) for body, service in services.items()}

    stopped = run_dockyard(platform.env, "down")
    assert stopped.returncode == 0, stopped.stderr
    ready = up_again(platform)
    after_down_up = wait_all_serving(platform, services)
    routed_after = {body: platform.traefik_servers(service) for body, service in services.items()}

    kill_everything(platform, docker_client, platform.service_ids)
    rebooted_ready = up_again(platform)
    after_reboot = wait_all_serving(platform, services)

    print(
        f"\n[restarts] {SERVICES} services x {REPLICAS} replicas: after down+up (up ready in {ready:.1f} s) "
        f"all serving {after_down_up:.1f} s later; after a simulated reboot (up ready in "
        f"{rebooted_ready:.1f} s) {after_reboot:.1f} s later; "
        f"routes before {routed_before}, after down+up {routed_after}"
    )
    assert deployment_ids(platform, services) == released  # no deploy, no status changed
