"""Scaling in place on the running platform, under a request loop through Traefik: the scale route adds
replicas beside the running ones and removes the highest-numbered ones, the same deployment throughout;
the replicas kept are never restarted (same container ids) and no request fails or stalls."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.platform import AppImages, Platform
from tests.support.traffic import RequestLoop, hostname

pytestmark = pytest.mark.timeout(300)

SCALE_WITHIN_SECONDS = 60


def running_replicas(client: docker.DockerClient, deployment_id: str) -> dict[str, str]:
    """replica id -> container id of the deployment's running containers, as the agent runs them."""
    # The low-level list: one call, no inspect of a container a scale down may remove meanwhile.
    containers = client.api.containers(filters={"label": f"dockyard.deployment={deployment_id}"})
    return {c["Labels"]["dockyard.replica"]: c["Id"] for c in containers}


def scale(platform: Platform, service: dict[str, Any], replicas: int) -> dict[str, Any]:
    """POST scale; a deploy still finishing (its stability window) is answered 409: asked again."""
    deadline = time.monotonic() + SCALE_WITHIN_SECONDS
    while True:
        response = platform.api.post(f"/v1/services/{service['id']}/scale", json={"replicas": replicas})
        if response.status_code != 409 or "being deployed" not in response.text:
            assert response.status_code == 202, response.text
            return response.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, response.text
        time.sleep(0.5)


def scale_workflow(platform: Platform, deployment: dict[str, Any], count: int) -> str:
    """What Temporal says of the scale and of the service's workflow, for a failure message."""
    service_workflow = f"service/{deployment['service_id']}/{deployment['environment_id']}"
    scale = f"scale/{deployment['service_id']}/{deployment['environment_id']}/{deployment['id']}/{count}"
    said = []
    for args in (["describe", "-w", scale], ["show", "-w", service_workflow]):
        described = subprocess.run(
            [
                str(Path(sys.executable).parent / "temporal"),
                "workflow",
                *args,
                "--address",
                platform.env["DOCKYARD_TEMPORAL_ADDRESS"],
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        said.append(f"{args[-1]}: {described.stdout[-4000:]} {described.stderr[-1000:]}")
    return "\n".join(said)


def wait_scaled(
    platform: Platform, client: docker.DockerClient, service: dict[str, Any], deployment_id: str, count: int
) -> dict[str, str]:
    started = time.monotonic()
    while True:
        replicas = running_replicas(client, deployment_id)
        servers = platform.traefik_servers(service)
        if len(replicas) == count and len(servers) == count:
            return replicas
        if time.monotonic() - started > SCALE_WITHIN_SECONDS:
            deployment = platform.api.get(f"/v1/deployments/{deployment_id}").json()
            pytest.fail(
                f"not at {count} replicas after {SCALE_WITHIN_SECONDS} s: {replicas}, Traefik {servers}; "
                f"the deployment says {deployment['message']!r}; "
                + scale_workflow(platform, deployment, count)
            )
        time.sleep(0.2)


def test_scale_up_and_down_in_place_under_traffic(
    platform: Platform, app_images: AppImages, docker_client: docker.DockerClient
) -> None:
    image = app_images.push("e2e/scale", "v1", "scale v1")
    service = platform.create_service("e2e-scale", "web", image, health_check_path="/healthz", replicas=2)
    deployment = platform.wait_final(platform.deploy(service["id"])["id"])
    assert deployment["status"] == "ACTIVE", deployment
    before = wait_scaled(platform, docker_client, service, deployment["id"], 2)

    marks: list[tuple[float, str]] = []
    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        loop.first("scale v1")
        marks.append((time.perf_counter(), "scale up asked"))
        up = scale(platform, service, 4)
        assert up["id"] == deployment["id"] and up["status"] == "ACTIVE"
        marks.append((time.perf_counter(), "scale up accepted"))
        four = wait_scaled(platform, docker_client, service, deployment["id"], 4)
        marks.append((time.perf_counter(), "at 4"))
        time.sleep(1)  # traffic over the four
        marks.append((time.perf_counter(), "scale down asked"))
        down = scale(platform, service, 1)
        assert down["id"] == deployment["id"]
        marks.append((time.perf_counter(), "scale down accepted"))
        one = wait_scaled(platform, docker_client, service, deployment["id"], 1)
        marks.append((time.perf_counter(), "at 1"))
        time.sleep(1)
    print(loop.summary())
    answered = [at for at, _ in loop.timeline]
    if len(answered) > 1:
        gap, after = max((b - a, a) for a, b in itertools.pairwise(answered))
        print(
            f"longest gap between answers {gap:.2f} s, from", [(round(after - at, 2), m) for at, m in marks]
        )

    assert loop.failures == []
    assert loop.answers.keys() == {"scale v1"} and loop.total > 100
    replica = deployment["id"].replace("_", "-")
    assert {r: four[r] for r in before} == before  # kept: the same containers
    assert sorted(four) == [f"{replica}-{i}" for i in range(4)]
    assert one == {f"{replica}-0": before[f"{replica}-0"]}
    history = platform.api.get(f"/v1/services/{service['id']}/deployments").json()
    assert [(d["id"], d["status"]) for d in history] == [(deployment["id"], "ACTIVE")]
    assert platform.api.get(f"/v1/services/{service['id']}").json()["replicas"] == 1
    assert platform.get(service).text.strip() == "scale v1"
