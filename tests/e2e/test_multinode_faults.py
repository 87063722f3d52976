"""Faults on three nodes, end to end: the worker killed in the middle of a rolling update, a new version
that never passes its health check, and a node agent or a node's Docker Engine that restarts under
running replicas. Each runs on a service with three replicas, one per node, under a bounded request loop
through Traefik that must see no failed request."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.test_multinode import replicas_per_node
from tests.support.fleet import EnrolledFleet
from tests.support.images import build_http_image
from tests.support.platform import AppImages, Platform
from tests.support.traffic import RequestLoop, hostname

pytestmark = pytest.mark.timeout(600)

DEPLOY_TIMEOUT_SECONDS = 180
SETTLE_TIMEOUT_SECONDS = 30  # old replicas go after ACTIVE (drain, then the orphan sweep)


# Containers as each node's own Docker Engine has them: (node name, deployment id, container id, started at,
# running), every state included, so an exited leftover counts too.
Container = tuple[str, str, str, str, bool]


def containers_on_nodes(fleet: EnrolledFleet, service_id: str) -> list[Container]:
    found: list[Container] = []
    for node in fleet.nodes:
        client = node.engine.client(timeout=30)
        try:
            for container in client.containers.list(
                all=True, filters={"label": f"dockyard.service={service_id}"}, ignore_removed=True
            ):
                state = container.attrs["State"]
                found.append(
                    (
                        node.name,
                        container.labels["dockyard.deployment"],
                        container.id or "",
                        state["StartedAt"],
                        state["Running"],
                    )
                )
        finally:
            client.close()
    return sorted(found)


def running_one_per_node(fleet: EnrolledFleet, containers: list[Container], deployment_id: str) -> bool:
    return sorted((node, deployment, running) for node, deployment, _, _, running in containers) == sorted(
        (node.name, deployment_id, True) for node in fleet.nodes
    )


def eventually(check: Callable[[], bool], timeout: float = SETTLE_TIMEOUT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def deployments(platform: Platform, service_id: str) -> dict[str, str]:
    listed = platform.api.get(f"/v1/services/{service_id}/deployments").json()
    return {deployment["id"]: deployment["status"] for deployment in listed}


def push_without_health_path(app_images: AppImages, repository: str, tag: str, body: str) -> str:
    """As AppImages.push, but the image serves only `/`: its `/healthz` answers 404."""
    platform = app_images.platform
    target = f"{platform.registry_host}/{repository}"
    build_http_image(app_images.client, f"{target}:{tag}", body, health_path=None)
    for line in app_images.client.images.push(
        target, tag=tag, auth_config=platform.registry_auth, stream=True, decode=True
    ):
        assert "error" not in line, line
    return f"{target}:{tag}"


def deployed_on_three_nodes(
    platform: Platform, app_images: AppImages, fleet: EnrolledFleet, slug: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A service of three replicas with v1 ACTIVE, one replica per node: (service, deployment)."""
    v1 = app_images.push(f"e2e/{slug}", "v1", f"{slug} v1")
    service = platform.create_service(f"e2e-{slug}", slug, v1, replicas=3, health_check_path="/healthz")
    first = platform.wait_final(platform.deploy(service["id"])["id"], timeout=DEPLOY_TIMEOUT_SECONDS)
    assert first["status"] == "ACTIVE", first
    assert replicas_per_node(fleet, service["id"], first["id"]) == {node.name: 1 for node in fleet.nodes}
    return service, first


def test_a_worker_killed_in_the_middle_of_a_rolling_update_completes_it_with_no_orphan(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    service, first = deployed_on_three_nodes(platform, app_images, fleet, "killroll")
    # v2 answers only after a few seconds: the rollout sits between "replicas started" and "routing".
    v2 = app_images.push("e2e/killroll", "v2", "killroll v2", start_delay=6)
    worker_pid_file = platform.state_dir / "run" / "worker.pid"

    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        time.sleep(0.5)
        second = platform.deploy(service["id"], image=v2)
        deadline = time.monotonic() + 60
        while sum(replicas_per_node(fleet, service["id"], second["id"]).values()) == 0:
            assert time.monotonic() < deadline, "no replica of v2 started on any node"
            time.sleep(0.1)
        caught = platform.api.get(f"/v1/deployments/{second['id']}").json()
        assert caught["status"] == "DEPLOYING", caught  # caught mid-rollout, before ACTIVE
        worker_pid = int(worker_pid_file.read_text())
        os.kill(worker_pid, signal.SIGKILL)  # the supervisor starts a new worker
        killed = time.monotonic()

        final = platform.wait_final(second["id"], timeout=DEPLOY_TIMEOUT_SECONDS)
        completed = time.monotonic() - killed
        drained = eventually(
            lambda: running_one_per_node(fleet, containers_on_nodes(fleet, service["id"]), second["id"])
        )
        time.sleep(1)

    print(
        f"\n[faults] worker SIGKILLed mid-rollout ({caught['message']!r}): ACTIVE {completed:.1f} s later; "
        f"{loop.total} requests, {len(loop.failures)} failed, answers {dict(loop.answers)}"
    )
    assert final["status"] == "ACTIVE", final
    assert int(worker_pid_file.read_text()) != worker_pid  # a new worker finished the release
    left = containers_on_nodes(fleet, service["id"])
    assert drained, f"not exactly one running replica of v2 per node, and nothing else: {left}"
    assert replicas_per_node(fleet, service["id"], second["id"]) == {node.name: 1 for node in fleet.nodes}
    assert deployments(platform, service["id"]) == {second["id"]: "ACTIVE", first["id"]: "REMOVED"}
    assert loop.failures == []
    assert loop.answers["killroll v2"] > 0
    assert platform.get(service).text.strip() == "killroll v2"


def test_a_version_failing_its_health_check_leaves_the_old_one_serving_and_nothing_behind(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    service, first = deployed_on_three_nodes(platform, app_images, fleet, "unhealthy")
    broken = push_without_health_path(app_images, "e2e/unhealthy", "v2", "unhealthy v2")

    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        time.sleep(0.5)
        started = time.monotonic()
        failed = platform.wait_final(
            platform.deploy(service["id"], image=broken)["id"], timeout=DEPLOY_TIMEOUT_SECONDS
        )
        failed_after = time.monotonic() - started
        cleaned = eventually(
            lambda: running_one_per_node(fleet, containers_on_nodes(fleet, service["id"]), first["id"])
        )
        time.sleep(1)

    print(
        f"\n[faults] health check failing on 3 nodes: FAILED after {failed_after:.1f} s with "
        f"{failed['message']!r}; {loop.total} requests, {len(loop.failures)} failed, "
        f"answers {dict(loop.answers)}"
    )
    assert failed["status"] == "FAILED", failed
    assert failed["failed_step"] == "health"
    message = failed["message"] or ""
    assert any(f"node {node.node_id}" in message for node in fleet.nodes), message
    assert f"{failed['id'].replace('_', '-')}-" in message, message  # the replica that is not healthy
    assert "not healthy" in message, message
    assert "GET /healthz answered HTTP 404" in message, message  # what the probe got
    assert cleaned, f"replicas of the failed deployment left: {containers_on_nodes(fleet, service['id'])}"
    assert deployments(platform, service["id"]) == {first["id"]: "ACTIVE", failed["id"]: "FAILED"}
    assert loop.failures == []
    assert dict(loop.answers) == {"unhealthy v1": loop.total}
    assert platform.get(service).text.strip() == "unhealthy v1"


def test_a_restarted_agent_re_adopts_its_replicas_without_restarting_them(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    service, first = deployed_on_three_nodes(platform, app_images, fleet, "readopt")
    restarted = fleet.nodes[1]
    before = containers_on_nodes(fleet, service["id"])
    assert running_one_per_node(fleet, before, first["id"]), before

    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        time.sleep(0.5)
        stopped = time.monotonic()
        fleet.stop_agent(restarted.index)
        fleet.start_agent(restarted.index)
        agent_away = time.monotonic() - stopped
        time.sleep(3)  # past one round of the fleet watch's probes (every 2 s)
    print(
        f"\n[faults] agent of {restarted.name} stopped and started again: away {agent_away:.1f} s; "
        f"{loop.total} requests, {len(loop.failures)} failed"
    )

    assert containers_on_nodes(fleet, service["id"]) == before  # same ids, same start times
    assert replicas_per_node(fleet, service["id"], first["id"]) == {node.name: 1 for node in fleet.nodes}
    assert fleet.listed()[restarted.name]["state"] == "READY"
    assert deployments(platform, service["id"]) == {first["id"]: "ACTIVE"}  # nothing redeployed
    assert loop.failures == []
    assert dict(loop.answers) == {"readopt v1": loop.total}

    v2 = app_images.push("e2e/readopt", "v2", "readopt v2")
    with RequestLoop(platform.edge_url, hostname(service)) as update:
        time.sleep(0.5)
        second = platform.wait_final(
            platform.deploy(service["id"], image=v2)["id"], timeout=DEPLOY_TIMEOUT_SECONDS
        )
        replaced = eventually(
            lambda: running_one_per_node(fleet, containers_on_nodes(fleet, service["id"]), second["id"])
        )
        time.sleep(1)
    print(
        f"[faults] rolling update after the restart: {update.total} requests, {len(update.failures)} failed"
    )

    assert second["status"] == "ACTIVE", second
    after = containers_on_nodes(fleet, service["id"])
    assert replaced, f"not exactly one running replica of v2 per node, and nothing else: {after}"
    old_ids = {container_id for _, _, container_id, _, _ in before}
    assert not old_ids & {container_id for _, _, container_id, _, _ in after}
    assert update.failures == []
    assert update.answers["readopt v2"] > 0


def test_a_node_s_docker_engine_restarting_under_its_replicas_fails_no_request(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    """`systemctl restart docker` on a node: live restore keeps its replicas running through it (the node
    engines run with it, as production nodes should), the agent's calls meet a restarting engine and
    try again, and the service keeps answering, on every replica. Docker's userland proxy, which carries
    the node's published ports, restarts with the engine: a request in flight through it then is cut
    (Traefik does not resend a request once sent); later ones go to the other nodes until it is back."""
    fleet = enrolled_fleet
    service, first = deployed_on_three_nodes(platform, app_images, fleet, "engine")
    restarted = fleet.nodes[2]
    before = containers_on_nodes(fleet, service["id"])

    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        time.sleep(0.5)
        stopped, stopped_at = time.monotonic(), time.perf_counter()
        restarted.engine.restart_dockerd()
        away, back_at = time.monotonic() - stopped, time.perf_counter()
        time.sleep(3)  # past one round of the fleet watch (every 2 s)
    print(f"\n[faults] engine of {restarted.name} restarted in {away:.1f} s; {loop.summary()}")

    assert containers_on_nodes(fleet, service["id"]) == before  # same ids, same start times
    # Only requests in flight while the engine restarted may fail; a stall over 2 s counts as a failure.
    late = [at for at in loop.failed_at if not stopped_at <= at <= back_at + 0.5]
    assert late == [], (loop.failures, [at - stopped_at for at in loop.failed_at], back_at - stopped_at)
    assert len(loop.failures) <= 2, loop.failures
    assert set(loop.answers) == {"engine v1"}
    servers = platform.traefik_servers(service)
    assert len(servers) == 3, servers
    for server in servers:  # every replica answers where Traefik sends it
        assert httpx.get(server, timeout=5).text.strip() == "engine v1", server
    assert deployments(platform, service["id"]) == {first["id"]: "ACTIVE"}  # nothing redeployed
    assert fleet.listed()[restarted.name]["state"] == "READY"


def test_a_replica_removed_behind_dockyard_s_back_is_replaced_with_no_failed_request(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    """`docker rm -f` of a replica on its node: the node's heartbeats no longer list it, so it is
    marked missing and the fleet watch releases the deployment again (as for a lost node); Traefik's
    retry sends the requests meant for it to the others meanwhile."""
    fleet = enrolled_fleet
    service, first = deployed_on_three_nodes(platform, app_images, fleet, "vanished")
    platform.wait_released(first)  # inside its stability window the deploy would be rolled back
    victim = fleet.nodes[0]

    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        time.sleep(0.5)
        client = victim.engine.client(timeout=30)
        try:
            (container,) = client.containers.list(filters={"label": f"dockyard.service={service['id']}"})
            removed_at = time.perf_counter()
            container.remove(force=True)
        finally:
            client.close()
        healed = eventually(
            lambda: any(
                status == "ACTIVE" and deployment_id != first["id"]
                for deployment_id, status in deployments(platform, service["id"]).items()
            ),
            timeout=90,
        )
        healed_after = time.perf_counter() - removed_at
        statuses = deployments(platform, service["id"])
        replacement = next((d for d, status in statuses.items() if status == "ACTIVE"), "")
        # Three replicas of the new deployment, and nothing else. Not necessarily one per node: the
        # scheduler spreads them relative to the service's replicas running when it places them, so
        # the node that lost one may get two.
        replaced = eventually(
            lambda: (
                [
                    (deployment, running)
                    for _, deployment, _, _, running in containers_on_nodes(fleet, service["id"])
                ]
                == [(replacement, True)] * 3
            )
        )
        time.sleep(1)
    print(
        f"\n[faults] replica removed on {victim.name}: a new deployment ACTIVE {healed_after:.1f} s later;"
        f" {loop.summary()}"
    )

    assert healed, f"no new ACTIVE deployment replaced the missing replica: {statuses}"
    assert statuses[first["id"]] != "ACTIVE", statuses
    assert replaced, containers_on_nodes(fleet, service["id"])
    # Only a request in flight inside the removed replica may fail (nothing retries one that reached
    # its server); a stall over 2 s counts as a failure.
    assert all(at - removed_at < 1.0 for at in loop.failed_at), (loop.failures, loop.failed_at, removed_at)
    assert set(loop.answers) == {"vanished v1"}
    for server in platform.traefik_servers(service):
        assert httpx.get(server, timeout=5).text.strip() == "vanished v1", server
