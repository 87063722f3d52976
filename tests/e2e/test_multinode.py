"""Several nodes, end to end: three enrolled agents, each on its own Docker Engine and loopback address,
behind the platform's Traefik. Replicas spread over the nodes; a rolling update and a rollback run under
a bounded request loop through Traefik, which must see no failed request."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.support.fleet import EnrolledFleet
from tests.support.platform import AppImages, Platform
from tests.support.traffic import RequestLoop, hostname

pytestmark = pytest.mark.timeout(600)


def replicas_per_node(fleet: EnrolledFleet, service_id: str, deployment_id: str) -> dict[str, int]:
    async def count() -> dict[str, int]:
        found: dict[str, int] = {}
        for index, node in enumerate(fleet.nodes):
            async with fleet.client(index) as agent:
                replicas = await agent.replicas(service_id=service_id)
            found[node.name] = sum(1 for r in replicas if r.deployment_id == deployment_id)
        return found

    return asyncio.run(count())


def test_replicas_spread_over_nodes_and_updates_and_rollbacks_fail_no_request(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    v1 = app_images.push("e2e/spread", "v1", "spread v1")
    service = platform.create_service("e2e-spread", "spread", v1, replicas=3, health_check_path="/healthz")

    first = platform.wait_final(platform.deploy(service["id"])["id"], timeout=180)
    assert first["status"] == "ACTIVE", first
    assert replicas_per_node(fleet, service["id"], first["id"]) == {node.name: 1 for node in fleet.nodes}
    assert platform.get(service).text.strip() == "spread v1"

    v2 = app_images.push("e2e/spread", "v2", "spread v2")
    with RequestLoop(platform.edge_url, hostname(service)) as update:
        time.sleep(0.5)
        second = platform.wait_final(platform.deploy(service["id"], image=v2)["id"], timeout=180)
        time.sleep(1)
    assert second["status"] == "ACTIVE", second
    print(
        f"\n[multinode] rolling update of 3 replicas on 3 nodes: {update.total} requests, "
        f"{len(update.failures)} failed, answers {dict(update.answers)}"
    )
    assert update.failures == []
    assert update.answers["spread v1"] > 0 and update.answers["spread v2"] > 0
    assert replicas_per_node(fleet, service["id"], second["id"]) == {node.name: 1 for node in fleet.nodes}

    with RequestLoop(platform.edge_url, hostname(service)) as rollback_loop:
        time.sleep(0.5)
        called = time.monotonic()
        response = platform.api.post(
            f"/v1/services/{service['id']}/rollback", json={"deployment_id": first["id"]}
        )
        assert response.status_code == 202, response.text
        while platform.get(service).text.strip() != "spread v1":
            assert time.monotonic() - called < 60, "the rollback never served v1"
            time.sleep(0.02)
        rollback_seconds = time.monotonic() - called
        rolled_back = platform.wait_final(response.json()["id"], timeout=120)
        time.sleep(1)
    assert rolled_back["status"] == "ACTIVE", rolled_back
    assert rolled_back["image_ref"] == first["image_ref"]
    print(
        f"[multinode] rollback → v1 answering through Traefik: {rollback_seconds:.2f} s; "
        f"{rollback_loop.total} requests, {len(rollback_loop.failures)} failed"
    )
    assert rollback_loop.failures == []
    assert platform.get(service).text.strip() == "spread v1"


def prometheus_targets(platform: Platform, job: str) -> dict[str, str]:
    """instance → health of the job's targets, as the platform's Prometheus sees them."""
    url = f"{platform.env['DOCKYARD_PROMETHEUS_URL']}/api/v1/targets"
    targets = httpx.get(url, timeout=5).json()["data"]["activeTargets"]
    return {t["labels"]["instance"]: t["health"] for t in targets if t["labels"]["job"] == job}


def test_prometheus_finds_the_enrolled_agents_and_scrapes_them_over_mutual_tls(
    platform: Platform, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    wanted = {node.address for node in fleet.nodes}
    deadline = time.monotonic() + 60
    while not wanted <= {
        address for address, health in prometheus_targets(platform, "agents").items() if health == "up"
    }:
        assert time.monotonic() < deadline, (
            f"agents not all scraped: {prometheus_targets(platform, 'agents')}"
        )
        time.sleep(1)
    node = fleet.nodes[0]
    deadline = time.monotonic() + 30
    while True:
        response = platform.api.get(
            f"/v1/nodes/{node.node_id}/metrics", params={"metric": "memory", "range": "1m"}
        )
        assert response.status_code == 200, response.text
        total = response.json()["total"]
        if total and total[-1][1] > 0:
            break
        assert time.monotonic() < deadline, f"no memory series for node {node.name}: {response.json()}"
        time.sleep(1)


def test_a_lost_node_s_replicas_serve_again_from_the_other_nodes_within_30_seconds(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    image = app_images.push("e2e/heal", "v1", "heal v1")
    service = platform.create_service("e2e-heal", "heal", image, replicas=3, health_check_path="/healthz")
    first = platform.wait_final(platform.deploy(service["id"])["id"], timeout=180)
    assert first["status"] == "ACTIVE", first
    lost = fleet.nodes[1]

    fleet.kill_node(1)  # the agent, its engine and every container on it: a dead VM
    killed = time.monotonic()
    healed: dict[str, Any] | None = None
    while time.monotonic() - killed < 60:
        listed = platform.api.get(f"/v1/services/{service['id']}/deployments").json()
        if listed[0]["id"] != first["id"] and listed[0]["status"] == "ACTIVE":
            healed = listed[0]
            break
        time.sleep(0.25)
    assert healed is not None, "no deployment replaced the lost node's replicas"
    answers = Counter(platform.get(service).status_code for _ in range(30))
    recovered = time.monotonic() - killed
    print(f"\n[multinode] node lost → its replicas serving again from the others: {recovered:.1f} s")

    assert answers == Counter({200: 30})
    assert recovered < 30
    node = platform.api.get(f"/v1/nodes/{lost.node_id}").json()
    assert node["state"] == "DOWN"
    alive_node = platform.api.get(f"/v1/nodes/{fleet.nodes[0].node_id}").json()
    assert alive_node["state"] == "READY" and alive_node["last_heartbeat_at"]  # heartbeats recorded
    assert alive_node["capacity"]["cpu_millis"] >= 1000 and alive_node["usage"]["memory_mb"] > 0
    alive = replicas_per_node_alive(fleet, service["id"], healed["id"])
    assert set(alive) == {node.name for node in fleet.nodes} - {lost.name}
    assert sorted(alive.values()) == [1, 2]  # three replicas spread over the two nodes left


def replicas_per_node_alive(fleet: EnrolledFleet, service_id: str, deployment_id: str) -> dict[str, int]:
    """Like replicas_per_node, asking only the nodes that still answer."""

    async def count() -> dict[str, int]:
        found: dict[str, int] = {}
        for index, node in enumerate(fleet.nodes):
            try:
                async with fleet.client(index) as agent:
                    replicas = await agent.replicas(service_id=service_id)
            except Exception:
                continue
            found[node.name] = sum(1 for r in replicas if r.deployment_id == deployment_id)
        return found

    return asyncio.run(count())


def test_draining_a_node_moves_its_replicas_to_the_others_without_a_failed_request(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    image = app_images.push("e2e/drain", "v1", "drain v1")
    service = platform.create_service("e2e-drain", "drain", image, replicas=3, health_check_path="/healthz")
    first = platform.wait_final(platform.deploy(service["id"])["id"], timeout=180)
    assert first["status"] == "ACTIVE", first
    drained = fleet.nodes[2]

    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        time.sleep(0.3)
        response = platform.api.post(f"/v1/nodes/{drained.node_id}/drain")
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "DRAINING"
        moved = platform.api.get(f"/v1/services/{service['id']}/deployments").json()[0]
        assert moved["id"] != first["id"] and moved["source"]["redeploy_of"] == first["id"]
        moved = platform.wait_final(moved["id"], timeout=120)
        deadline = time.monotonic() + 30
        while replicas_per_node(fleet, service["id"], first["id"]) != {n.name: 0 for n in fleet.nodes}:
            assert time.monotonic() < deadline, "the drained deployment's replicas were not removed"
            time.sleep(0.2)
    assert moved["status"] == "ACTIVE", moved
    print(f"\n[multinode] drain: {loop.total} requests, {len(loop.failures)} failed")
    assert loop.failures == []
    placed = replicas_per_node(fleet, service["id"], moved["id"])
    assert placed[drained.name] == 0 and sorted(placed.values()) == [0, 1, 2]


def test_constraints_and_resources_decide_where_and_how_replicas_run(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    image = app_images.push("e2e/placed", "v1", "placed v1")
    zone_b = next(node for node in fleet.nodes if node.labels["zone"] == "b")
    service = platform.create_service(
        "e2e-placed",
        "placed",
        image,
        replicas=2,
        health_check_path="/healthz",
        constraints=[f"zone={zone_b.labels['zone']}", f"fleet={fleet.fleet_id}"],
        cpu_millis=250,
        memory_mb=64,
        draining_seconds=3,
    )
    placed = platform.wait_final(platform.deploy(service["id"])["id"], timeout=180)
    assert placed["status"] == "ACTIVE", placed
    assert replicas_per_node(fleet, service["id"], placed["id"]) == {
        node.name: 2 if node is zone_b else 0 for node in fleet.nodes
    }
    client = zone_b.engine.client()
    try:
        containers = client.containers.list(filters={"label": f"dockyard.service={service['id']}"})
        limits = {(c.attrs["HostConfig"]["NanoCpus"], c.attrs["HostConfig"]["Memory"]) for c in containers}
        assert limits == {(250_000_000, 64 * 2**20)}
        assert {c.labels["dockyard.stop-grace"] for c in containers} == {"3"}
    finally:
        client.close()

    nowhere = platform.create_service("e2e-nowhere", "nowhere", image, constraints=["zone=nowhere"])
    failed = platform.wait_final(platform.deploy(nowhere["id"])["id"], timeout=120)
    assert (failed["status"], failed["failed_step"]) == ("FAILED", "place"), failed
    assert "fits on no node" in failed["message"]
    assert f"{zone_b.name}: constraint zone=nowhere: node has zone=b" in failed["message"]
