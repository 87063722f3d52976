"""A node's Docker Engine restarts under a running service (an upgrade, a crash and restart): its replica
comes back by its restart policy on a new port, the node's heartbeats report it, and the fleet watch
moves the route there; the service answers on every replica again with no deploy, and the other nodes'
replicas serve meanwhile."""

from __future__ import annotations

import time
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from tests.e2e.test_multinode_faults import deployed_on_three_nodes, deployments
from tests.support.fleet import EnrolledFleet, FleetNode
from tests.support.platform import AppImages, Platform
from tests.support.traffic import RequestLoop, hostname

pytestmark = pytest.mark.timeout(600)

BACK_WITHIN_SECONDS = 30


def traefik_servers(platform: Platform, service: dict[str, Any]) -> list[str]:
    url = f"{platform.env['DOCKYARD_TRAEFIK_API_URL']}/api/http/services"
    prefix = service["id"].replace("_", "-") + "-"
    for item in httpx.get(url, timeout=5).json():
        if item["name"].startswith(prefix) and item["name"].endswith("@http"):
            return sorted(server["url"] for server in item["loadBalancer"]["servers"])
    return []


def replica_started_at(node: FleetNode) -> str | None:
    """When the running replica on the node started, or None while none runs."""
    client = node.engine.client(timeout=10)
    try:
        running = client.containers.list(filters={"label": "dockyard.managed=true"})
        return running[0].attrs["State"]["StartedAt"] if running else None
    except docker.errors.DockerException:
        return None
    finally:
        client.close()


def every_server_answers(servers: list[str], body: str) -> bool:
    try:
        return all(httpx.get(server, timeout=2).text.strip() == body for server in servers)
    except httpx.HTTPError:
        return False


def test_a_node_engine_restart_moves_the_route_to_the_replicas_new_port(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    service, first = deployed_on_three_nodes(platform, app_images, fleet, "enginerestart")
    platform.wait_released(first)  # its stability window over: the engine restart comes after
    before = traefik_servers(platform, service)
    restarted = fleet.nodes[0]
    assert len(before) == 3, before

    started_before = replica_started_at(restarted)
    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        time.sleep(0.5)
        restarted.engine.restart_dockerd()
        engine_back = time.monotonic()
        while True:
            servers = traefik_servers(platform, service)
            started_now = replica_started_at(restarted)
            restarted_replica = started_now is not None and started_now != started_before
            if len(servers) == 3 and restarted_replica and every_server_answers(servers, "enginerestart v1"):
                break
            elapsed = time.monotonic() - engine_back
            if elapsed > BACK_WITHIN_SECONDS:
                config = platform.api.get("/internal/traefik/config").text
                worker = (platform.state_dir / "logs" / "worker.log").read_text()[-3000:]
                pytest.fail(
                    f"not serving on every replica {elapsed:.0f} s after the restart: {servers}, "
                    f"replica on {restarted.name} started {started_now}; config {config}; worker: {worker}"
                )
            time.sleep(0.2)
        answering = time.monotonic() - engine_back
        time.sleep(1)

    print(
        f"\n[engine restart] {restarted.name}'s engine back; its replica running again and every replica "
        f"answering through the route {answering:.1f} s later ({before} -> {servers}); {loop.summary()}"
    )
    assert deployments(platform, service["id"]) == {first["id"]: "ACTIVE"}  # no deploy
    assert loop.failures == []
