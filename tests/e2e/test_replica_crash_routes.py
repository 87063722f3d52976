"""A replica that crashes long after its deploy is restarted by Docker on a new published port: the node's
heartbeats report it, and the fleet watch moves the route there. The service answers on every replica
again with no deploy. Only the requests the crash itself catches fail (in flight on the replica, or
accepted by its published port before Docker tears that down); afterwards a request to the dead port
cannot connect, and Traefik's retry sends it to another replica.

An engine restart without live restore changes ports the same way; node engines run with live restore
(as production nodes should: their replicas keep running through it, test_multinode_faults.py)."""

from __future__ import annotations

import os
import signal
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
CRASH_INSTANT_SECONDS = 1.0


def replica_on(node: FleetNode, service_id: str) -> dict[str, Any]:
    client = node.engine.client(timeout=10)
    try:
        found = client.containers.list(filters={"label": f"dockyard.service={service_id}"})
        assert len(found) == 1, [c.name for c in found]
        return found[0].attrs  # type: ignore[no-any-return]
    finally:
        client.close()


def published_url(attrs: dict[str, Any]) -> str | None:
    """Where the container is published now; None while it is not (restarting)."""
    for bindings in (attrs["NetworkSettings"]["Ports"] or {}).values():
        for binding in bindings or []:
            return f"http://{binding['HostIp']}:{binding['HostPort']}"
    return None


def every_server_answers(servers: list[str], body: str) -> bool:
    try:
        return all(httpx.get(server, timeout=2).text.strip() == body for server in servers)
    except httpx.HTTPError:
        return False


def test_a_crashed_replica_restarted_on_a_new_port_gets_the_route_back(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    service, first = deployed_on_three_nodes(platform, app_images, fleet, "crashport")
    platform.wait_released(first)  # its stability window over: this crash is a later one
    node = fleet.nodes[0]
    before = replica_on(node, service["id"])
    old_url = published_url(before)
    assert old_url in platform.traefik_servers(service)

    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        time.sleep(0.5)
        os.kill(before["State"]["Pid"], signal.SIGKILL)  # the app dies; Docker's restart policy starts it
        crashed, crashed_at = time.monotonic(), time.perf_counter()
        while True:
            try:
                now = replica_on(node, service["id"])
            except (AssertionError, docker.errors.DockerException):
                now = before
            servers = platform.traefik_servers(service)
            restarted = now["RestartCount"] > before["RestartCount"] and now["State"]["Running"]
            routed = restarted and published_url(now) in servers and len(servers) == 3
            if routed and every_server_answers(servers, "crashport v1"):
                break
            elapsed = time.monotonic() - crashed
            if elapsed > BACK_WITHIN_SECONDS:
                pytest.fail(f"route not on the restarted replica {elapsed:.0f} s after its crash: {servers}")
            time.sleep(0.1)
        answering = time.monotonic() - crashed
        time.sleep(1)

    print(
        f"\n[replica crash] {node.name}'s replica restarted by Docker on {published_url(now)} "
        f"(was {old_url}); routed there and every replica answering {answering:.1f} s after the crash; "
        f"{loop.summary()}"
    )
    assert published_url(now) != old_url, "Docker gave the restarted replica its old port: nothing was shown"
    assert deployments(platform, service["id"]) == {first["id"]: "ACTIVE"}  # no deploy
    # A crash costs the requests in flight on that replica, and those its published port still accepted
    # before Docker tore it down (a moment later): never one after that instant.
    late = [
        (why, round(at - crashed_at, 2))
        for why, at in zip(loop.failures, loop.failed_at, strict=True)
        if at - crashed_at > CRASH_INSTANT_SECONDS
    ]
    assert late == [], f"requests failed after the crash instant: {late}"
