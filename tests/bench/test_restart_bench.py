"""Restart recovery: seconds from `dockyard up` to every one of 20 services answering through Traefik
again after `dockyard down`, against a baseline measured in the same run: `docker start` of the same 20
stopped containers until each answers on its own published port (what the replicas' restart costs with
no platform at all).

Prints figures; asserts nothing about time. Run: scripts/bench.sh (or pytest tests/bench -m bench -s).
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.platform import AppImages, Platform, platform_with, run_dockyard

pytestmark = [pytest.mark.bench, pytest.mark.timeout(1200)]

SERVICES = 20
POLL_SECONDS = 0.05
BOUND_SECONDS = 120


def answers(url: str, body: str, host: str | None = None) -> bool:
    try:
        response = httpx.get(url, headers={"Host": host} if host else None, timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text.strip() == body


def until_all(checks: list[Any]) -> float:
    """Seconds until every check holds (each polled until it does), bounded."""
    started = time.perf_counter()
    pending = list(checks)
    while pending:
        pending = [check for check in pending if not check()]
        if pending and time.perf_counter() - started > BOUND_SECONDS:
            raise TimeoutError(f"{len(pending)} of {len(checks)} never answered within {BOUND_SECONDS} s")
        if pending:
            time.sleep(POLL_SECONDS)
    return time.perf_counter() - started


def published(container: Any) -> str:
    container.reload()
    binding = next(iter(container.attrs["NetworkSettings"]["Ports"].values()))[0]
    return f"http://{binding['HostIp']}:{binding['HostPort']}/"


def docker_start_baseline(client: docker.DockerClient, service_ids: list[str], bodies: list[str]) -> float:
    """Start the stopped replicas with Docker alone and wait until each answers; stop them again."""
    containers = [
        client.containers.list(all=True, filters={"label": f"dockyard.service={service_id}"})[0]
        for service_id in service_ids
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda container: container.start(), containers))
    urls = [published(container) for container in containers]
    elapsed = (time.perf_counter() - started) + until_all(
        [lambda url=url, body=body: answers(url, body) for url, body in zip(urls, bodies, strict=True)]
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda container: container.stop(timeout=5), containers))
    return elapsed


def test_services_answering_again_after_up(docker_client: docker.DockerClient, workdir: Path) -> None:
    with platform_with(docker_client, workdir / "restart-bench", {}) as platform:
        images = AppImages(docker_client, platform)
        image = images.push("bench/restart", "v1", "restart v1")
        services = [
            platform.create_service(f"bench-restart-{index}", f"restart{index}", image)
            for index in range(SERVICES)
        ]
        released = [platform.deploy(service["id"]) for service in services]  # all at once: a shorter run
        for deployment in released:
            assert platform.wait_final(deployment["id"], timeout=300)["status"] == "ACTIVE"
        for deployment in released:
            platform.wait_released(deployment)
        checks = [lambda service=service: through_traefik(platform, service) for service in services]
        try:
            until_all(checks)
        except TimeoutError as exc:
            states = [
                (d["id"], d["status"], d["failed_step"], d["message"])
                for service in services
                for d in platform.api.get(f"/v1/services/{service['id']}/deployments").json()
                if not through_traefik(platform, service)
            ]
            raise AssertionError(f"{exc}: {states}") from None

        assert run_dockyard(platform.env, "down").returncode == 0
        baseline = docker_start_baseline(
            docker_client, [service["id"] for service in services], ["restart v1"] * SERVICES
        )
        started = time.perf_counter()
        assert run_dockyard(platform.env, "up", "--detach").returncode == 0
        ready = time.perf_counter() - started
        try:
            serving = until_all(checks)
        except TimeoutError as exc:
            silent = [s["id"] for s in services if not through_traefik(platform, s)]
            shutil.copytree(platform.state_dir / "logs", Path("/tmp/restart-bench-logs"), dirs_exist_ok=True)
            raise AssertionError(f"{exc}: {silent}; logs copied to /tmp/restart-bench-logs") from None

    total = ready + serving
    print(
        f"\n[restart bench] {SERVICES} services, 1 replica each: `dockyard up` ready in {ready:.1f} s, every "
        f"service answering through Traefik {serving:.1f} s later ({total:.1f} s in all); baseline "
        f"`docker start` of the same {SERVICES} containers until each answers {baseline:.1f} s; "
        f"recovery after up is {serving / baseline:.1f}x the baseline, the whole {total / baseline:.1f}x"
    )


def through_traefik(platform: Platform, service: dict[str, Any]) -> bool:
    host = service["urls"]["production"].split("://", 1)[1].split(":")[0]
    return answers(f"{platform.edge_url}/", "restart v1", host)
