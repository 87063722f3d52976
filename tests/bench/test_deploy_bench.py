"""Deploy latency: from the deploy API call to the first 200 through Traefik, for a prebuilt image
already in the registry, against a baseline measured in the same run: plain `docker run` of the
same image plus waiting for its port to answer. Twice: with an HTTP health check (the replica's
answer proves it healthy) and with a TCP-only one, which must hold for DOCKYARD_HEALTH_STABLE_SECONDS
(2 s by default: a process that accepts and then dies must not pass), so it costs that much more.

Prints figures; asserts nothing about time. Run: scripts/bench.sh (or pytest tests/bench -m bench -s).
"""

from __future__ import annotations

import statistics
import time

import docker
import httpx
import pytest

from tests.support.platform import AppImages, Platform

pytestmark = [pytest.mark.bench, pytest.mark.timeout(900)]

ROUNDS = 5
POLL_SECONDS = 0.005


def first_200(url: str, headers: dict[str, str] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(url, headers=headers).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{url} never answered 200")


def docker_run_baseline(client: docker.DockerClient, image: str) -> float:
    started = time.perf_counter()
    container = client.containers.run(
        image, detach=True, ports={"8080/tcp": ("127.0.0.1", None)}, environment={"PORT": "8080"}
    )
    try:
        container.reload()
        host_port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        first_200(f"http://127.0.0.1:{host_port}/")
        return time.perf_counter() - started
    finally:
        container.remove(force=True)


def platform_deploy(platform: Platform, image: str, name: str, health_path: str | None) -> float:
    service = platform.create_service(f"bench-{name}", name, image, health_check_path=health_path)
    host = service["urls"]["production"].split("://", 1)[1].split(":")[0]
    started = time.perf_counter()
    deployment = platform.deploy(service["id"])
    first_200(f"{platform.edge_url}/", headers={"Host": host})
    elapsed = time.perf_counter() - started
    assert platform.wait_final(deployment["id"])["status"] == "ACTIVE"
    return elapsed


@pytest.mark.parametrize("health", ["http", "tcp"])
def test_deploy_latency_against_docker_run(
    platform: Platform, app_images: AppImages, docker_client: docker.DockerClient, health: str
) -> None:
    image = app_images.push("bench/app", "v1", "bench")
    path = "/healthz" if health == "http" else None
    platform_deploy(platform, image, f"{health}0", path)  # warm-up: the node pulls the image once
    docker_run_baseline(docker_client, image)

    baseline, dockyard = [], []
    for round_number in range(1, ROUNDS + 1):  # interleaved, so both see the same machine load
        baseline.append(docker_run_baseline(docker_client, image))
        dockyard.append(platform_deploy(platform, image, f"{health}{round_number}", path))

    base_median, dockyard_median = statistics.median(baseline), statistics.median(dockyard)
    check = "HTTP health check" if health == "http" else "TCP-only health check (held 2 s)"
    print(
        f"\n[bench] {check}: deploy → first 200 through Traefik, median of {ROUNDS}:"
        f" {dockyard_median * 1000:.0f} ms (min {min(dockyard) * 1000:.0f}, max {max(dockyard) * 1000:.0f})"
        f"\n[bench] baseline docker run → first 200, median of {ROUNDS}: {base_median * 1000:.0f} ms"
        f" (min {min(baseline) * 1000:.0f}, max {max(baseline) * 1000:.0f})"
        f"\n[bench] overhead {(dockyard_median - base_median) * 1000:.0f} ms,"
        f" ratio {dockyard_median / base_median:.2f}x"
        + (" (goal: under 1000 ms over the baseline)" if health == "http" else " (the hold included)")
    )
