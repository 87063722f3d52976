"""Recovery figures, each against a baseline measured in the same run on the same platform (a plain
deploy of the same image, from the API call to ACTIVE):

- seconds from a SIGKILL of the Temporal server (`dockyard up` starts it again on its own database) to a
  deploy made right after the kill being ACTIVE;
- seconds from a deploy that crash-loops right after its cut-over to the previous version confirmed:
  ACTIVE again, the deploy FAILED, the previous version answering through Traefik.

Prints figures; asserts nothing about time. Run: scripts/bench.sh (or pytest tests/bench -m bench -s).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.platform import AppImages, Platform, platform_with
from tests.support.traffic import RequestLoop, hostname

pytestmark = [pytest.mark.bench, pytest.mark.timeout(900)]

WINDOW_SECONDS = 15
# Serves (and passes its health check), then crashes four seconds in, and at every start after that.
SERVE_THEN_CRASH = (
    "if [ -f /tmp/crashed ]; then echo 'segfault at start'; exit 139; fi; "
    "busybox httpd -f -p $PORT -h /www & sleep 4; touch /tmp/crashed; echo 'segfault in handler'; exit 139"
)


@pytest.fixture(scope="module")
def bench_platform(docker_client: docker.DockerClient, workdir: Path) -> Iterator[Platform]:
    extra = {"DOCKYARD_STABILITY_WINDOW_SECONDS": str(WINDOW_SECONDS)}
    with platform_with(docker_client, workdir / "recovery-bench", extra) as platform:
        yield platform


def deploy_seconds(platform: Platform, service: dict[str, Any], **body: Any) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    final = platform.wait_final(platform.deploy(service["id"], **body)["id"], timeout=300)
    return time.perf_counter() - started, final


def test_temporal_killed_to_the_next_deploy_active(
    bench_platform: Platform, docker_client: docker.DockerClient
) -> None:
    platform = bench_platform
    image = AppImages(docker_client, platform).push("bench/temporal-kill", "v1", "temporal kill v1")
    service = platform.create_service("bench-temporal-kill", "tkill", image, health_check_path="/healthz")
    baseline, first = deploy_seconds(platform, service)
    assert first["status"] == "ACTIVE", first
    platform.wait_released(first)

    pid_file = platform.state_dir / "run" / "temporal.pid"
    pid = int(pid_file.read_text())
    killed = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    deployment = platform.deploy(service["id"])  # while Temporal is down: the outbox hands it over later
    final = platform.wait_final(deployment["id"], timeout=300)
    recovered = time.perf_counter() - killed
    assert final["status"] == "ACTIVE", final
    assert int(pid_file.read_text()) != pid

    print(
        f"\n[recovery bench] Temporal SIGKILLed → the deploy made right after ACTIVE in {recovered:.1f} s; "
        f"baseline deploy {baseline:.1f} s; {recovered / baseline:.1f}x"
    )


def test_crash_looping_release_to_the_previous_version_confirmed(
    bench_platform: Platform, docker_client: docker.DockerClient
) -> None:
    platform = bench_platform
    image = AppImages(docker_client, platform).push("bench/crashloop", "v1", "crashloop v1")
    service = platform.create_service("bench-crashloop", "crashloop", image, health_check_path="/healthz")
    baseline, first = deploy_seconds(platform, service)
    assert first["status"] == "ACTIVE", first
    platform.wait_released(first)

    patched = platform.api.patch(f"/v1/services/{service['id']}", json={"start_command": SERVE_THEN_CRASH})
    assert patched.status_code == 200, patched.text
    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        deployment = platform.deploy(service["id"])
        cut_over = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            second = platform.api.get(f"/v1/deployments/{deployment['id']}").json()
            if second["status"] == "ACTIVE" and cut_over is None:
                cut_over = time.perf_counter()
            if second["status"] == "FAILED":
                break
            time.sleep(0.05)
        while platform.api.get(f"/v1/deployments/{first['id']}").json()["status"] != "ACTIVE":
            assert time.monotonic() < deadline, "the previous deployment is not ACTIVE again"
            time.sleep(0.05)
        while platform.get(service).text.strip() != "crashloop v1":
            assert time.monotonic() < deadline, "the previous version does not answer again"
            time.sleep(0.05)
        confirmed = time.perf_counter()
        time.sleep(1)

    assert second["status"] == "FAILED", second
    path = (
        f"cut-over → previous version confirmed {confirmed - cut_over:.1f} s (rolled back at "
        f"{second['failed_step']})"
        if cut_over is not None
        else f"failed at {second['failed_step']} before its cut-over"
    )
    print(
        f"\n[recovery bench] crash-looping release: {path}; its message: {second['message'][:160]!r}; "
        f"baseline deploy {baseline:.1f} s; {loop.summary()}"
    )
