"""Metrics end to end on the platform `dockyard up` runs: its Prometheus scrapes the local agent (with
its metrics token) and Traefik, and the metrics API answers a service's CPU (two replicas burning a
quarter of a CPU each, summed and per replica) and the request rate, errors and latency of a bounded
request loop sent through Traefik."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from core.naming import replica_id
from tests.support.platform import AppImages, Platform
from tests.support.traffic import RequestLoop, hostname

pytestmark = pytest.mark.timeout(300)

BURN = "(while :; do :; done) & busybox httpd -f -p $PORT -h /www & wait"


def metric(platform: Platform, service: dict[str, Any], name: str) -> dict[str, Any]:
    response = platform.api.get(
        f"/v1/services/{service['id']}/metrics", params={"metric": name, "range": "2m"}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def last(points: list[list[float]]) -> float:
    return points[-1][1] if points else 0.0


def until(check: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(1)
    return found


def test_prometheus_scrapes_the_local_agent_and_traefik(platform: Platform) -> None:
    url = platform.env["DOCKYARD_PROMETHEUS_URL"]

    def healthy() -> dict[str, str] | None:
        targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        health = {target["labels"]["job"]: target["health"] for target in targets}
        return health if health.get("local-agent") == "up" and health.get("traefik") == "up" else None

    until(healthy, "the local agent and Traefik scraped")


def test_the_metrics_api_answers_cpu_per_replica_and_the_requests_traefik_saw(
    platform: Platform, app_images: AppImages
) -> None:
    image = app_images.push("e2e/metered", "v1", "metered v1")
    service = platform.create_service(
        "e2e-metrics", "metered", image, replicas=2, start_command=BURN, cpu_millis=250, health_check_path="/"
    )
    deployment = platform.wait_final(platform.deploy(service["id"])["id"])
    assert deployment["status"] == "ACTIVE", deployment

    with RequestLoop(platform.edge_url, hostname(service), pause_seconds=0.02, max_seconds=20) as loop:
        requests = until(
            lambda: (found := metric(platform, service, "requests")) and last(found["total"]) > 1 and found,
            "the request rate through Traefik",
        )
        latency = until(
            lambda: (found := metric(platform, service, "latency_p50")) and found["total"] and found,
            "the median latency",
        )
    cpu = until(
        lambda: (found := metric(platform, service, "cpu")) and last(found["total"]) > 0.3 and found,
        "two replicas' CPU",
    )
    errors = metric(platform, service, "errors")
    print(
        f"\n[metrics] {last(requests['total']):.1f} requests/s, p50 {last(latency['total']) * 1000:.1f} ms, "
        f"CPU {last(cpu['total']):.2f} cores over {len(cpu['series'])} replicas; the loop sent {loop.sent}"
    )
    assert loop.failures == []
    assert requests["unit"] == "requests/s" and latency["unit"] == "seconds"
    assert 0 < last(latency["total"]) < 2
    assert last(errors["total"]) == 0
    assert cpu["unit"] == "cores" and last(cpu["total"]) < 0.7  # two quarters of a CPU
    replicas = sorted(s["replica"] for s in cpu["series"])
    assert replicas == [replica_id(deployment["id"], index) for index in range(2)]
