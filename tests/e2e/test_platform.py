"""The platform as a user runs it: `dockyard up`, the REST API, HTTP through Traefik."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import docker
import pytest

from core.settings import load_settings
from core.temporal import connect
from tests.support.platform import AppImages, Platform
from tests.support.traffic import RequestLoop, hostname

pytestmark = pytest.mark.timeout(300)


def containers_of(client: docker.DockerClient, **labels: str) -> list[str]:
    filters = [f"dockyard.{key}={value}" for key, value in labels.items()]
    # Names from the list answer alone (sparse): a container removed meanwhile is no error.
    listed = client.containers.list(all=True, sparse=True, filters={"label": filters})
    return [c.attrs["Names"][0].lstrip("/") for c in listed]


def eventually(check, timeout: float = 30) -> bool:  # type: ignore[no-untyped-def]
    """Old replicas are removed after the new deployment is ACTIVE (drain, then stop): wait for it."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def deployments(platform: Platform, service_id: str) -> list[dict]:
    return platform.api.get(f"/v1/services/{service_id}/deployments").json()  # type: ignore[no-any-return]


def test_deploy_then_update_switches_traffic_and_removes_old_containers(
    platform: Platform, app_images: AppImages, docker_client: docker.DockerClient
) -> None:
    v1 = app_images.push("e2e/web", "v1", "web v1")
    service = platform.create_service("e2e-update", "web", v1, health_check_path="/healthz")

    first = platform.wait_final(platform.deploy(service["id"])["id"])
    assert first["status"] == "ACTIVE", first
    assert first["image_digest"].startswith("sha256:")
    assert first["image_ref"] == f"{platform.registry_host}/e2e/web@{first['image_digest']}"
    assert platform.get(service).text.strip() == "web v1"

    v2 = app_images.push("e2e/web", "v2", "web v2")
    second = platform.wait_final(platform.deploy(service["id"], image=v2)["id"])
    assert second["status"] == "ACTIVE", second
    assert platform.get(service).text.strip() == "web v2"

    history = {d["id"]: d["status"] for d in deployments(platform, service["id"])}
    assert history == {second["id"]: "ACTIVE", first["id"]: "REMOVED"}
    assert eventually(lambda: containers_of(docker_client, deployment=first["id"]) == [])
    assert len(containers_of(docker_client, deployment=second["id"])) == 1

    url = platform.api.get(f"/v1/services/{service['id']}/url").json()
    assert url["deployment_id"] == second["id"]
    assert url["url"] == service["urls"]["production"]


def test_missing_image_fails_with_registry_answer_and_previous_keeps_serving(
    platform: Platform, app_images: AppImages
) -> None:
    good = app_images.push("e2e/steady", "v1", "steady v1")
    service = platform.create_service("e2e-missing", "steady", good)
    assert platform.wait_final(platform.deploy(service["id"])["id"])["status"] == "ACTIVE"

    missing = f"{platform.registry_host}/e2e/does-not-exist:v9"
    failed = platform.wait_final(platform.deploy(service["id"], image=missing)["id"])

    assert failed["status"] == "FAILED"
    assert failed["failed_step"] == "resolve"
    assert missing in failed["message"] and "MANIFEST_UNKNOWN" in failed["message"]
    assert platform.get(service).text.strip() == "steady v1"
    statuses = [d["status"] for d in deployments(platform, service["id"])]
    assert statuses.count("ACTIVE") == 1


def test_concurrent_deploys_never_overlap_and_the_newer_wins(
    platform: Platform, app_images: AppImages, docker_client: docker.DockerClient
) -> None:
    slow = app_images.push("e2e/race", "a", "race a", start_delay=2)
    fast = app_images.push("e2e/race", "b", "race b")
    service = platform.create_service("e2e-race", "race", slow)

    older = platform.deploy(service["id"], image=slow)
    newer = platform.deploy(service["id"], image=fast)

    older, newer = platform.wait_final(older["id"]), platform.wait_final(newer["id"])
    assert (older["status"], newer["status"]) == ("SUPERSEDED", "ACTIVE")
    assert platform.get(service).text.strip() == "race b"
    assert eventually(
        lambda: (
            containers_of(docker_client, service=service["id"])
            == containers_of(docker_client, deployment=newer["id"])
        )
    )

    # Truly simultaneous requests: exactly one deployment ends ACTIVE.
    results: list[dict] = []
    threads = [
        threading.Thread(
            target=lambda image=image: results.append(platform.deploy(service["id"], image=image))
        )
        for image in (slow, fast, slow)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finals = [platform.wait_final(d["id"])["status"] for d in results]
    assert sorted(finals).count("ACTIVE") <= 1
    statuses = [d["status"] for d in deployments(platform, service["id"])]
    assert statuses.count("ACTIVE") == 1


def test_deploy_survives_the_worker_being_killed_mid_deploy(
    platform: Platform, app_images: AppImages, docker_client: docker.DockerClient
) -> None:
    v1 = app_images.push("e2e/durable", "v1", "durable v1")
    service = platform.create_service("e2e-durable", "durable", v1, health_check_path="/healthz")
    assert platform.wait_final(platform.deploy(service["id"])["id"])["status"] == "ACTIVE"

    # v2 takes a few seconds to answer: the deploy sits between "containers started" and "routing".
    v2 = app_images.push("e2e/durable", "v2", "durable v2", start_delay=4)
    deployment = platform.deploy(service["id"], image=v2)
    deadline = time.monotonic() + 60
    while not [
        c for c in docker_client.containers.list(filters={"label": f"dockyard.deployment={deployment['id']}"})
    ]:
        assert time.monotonic() < deadline, "the new replica never started"
        time.sleep(0.05)
    assert platform.get(service).text.strip() == "durable v1"  # not routed yet

    worker_pid = int((platform.state_dir / "run" / "worker.pid").read_text())
    os.kill(worker_pid, signal.SIGKILL)  # the supervisor starts a new worker, as systemd would

    final = platform.wait_final(deployment["id"])
    assert final["status"] == "ACTIVE", final
    assert int((platform.state_dir / "run" / "worker.pid").read_text()) != worker_pid
    assert platform.get(service).text.strip() == "durable v2"
    assert eventually(
        lambda: (
            containers_of(docker_client, service=service["id"])
            == containers_of(docker_client, deployment=deployment["id"])
        )
    ), "orphan containers remain"


def test_every_deploy_is_a_workflow_searchable_by_service_and_deployment(
    platform: Platform, app_images: AppImages
) -> None:
    image = app_images.push("e2e/search", "v1", "search v1")
    service = platform.create_service("e2e-search", "search", image)
    deployment = platform.wait_final(platform.deploy(service["id"])["id"])

    async def find() -> list[str]:
        settings = load_settings(temporal_address=platform.env["DOCKYARD_TEMPORAL_ADDRESS"])
        client = await connect(settings)
        query = f'ServiceId = "{service["id"]}" AND DeploymentId = "{deployment["id"]}"'
        for _ in range(50):  # visibility is eventually consistent
            found = [w.id async for w in client.list_workflows(query)]
            if found:
                return found
            await asyncio.sleep(0.1)
        return []

    assert asyncio.run(find()) == [deployment["workflow_id"]]


def test_a_replica_removed_behind_dockyard_s_back_on_the_local_node_is_replaced(
    platform: Platform, app_images: AppImages, docker_client: docker.DockerClient
) -> None:
    """`docker rm -f` of a replica `dockyard up`'s own agent runs: the agent no longer reports it, the
    fleet watch marks it missing and releases the deployment again; the other replica serves meanwhile."""
    image = app_images.push("e2e/gone", "v1", "gone v1")
    service = platform.create_service("e2e-gone", "gone", image, replicas=2, health_check_path="/healthz")
    first = platform.wait_final(platform.deploy(service["id"])["id"])
    assert first["status"] == "ACTIVE", first
    platform.wait_released(first)  # inside its stability window the deploy would be rolled back

    with RequestLoop(platform.edge_url, hostname(service)) as loop:
        time.sleep(0.5)
        victim = docker_client.containers.list(filters={"label": f"dockyard.deployment={first['id']}"})[0]
        removed_at = time.perf_counter()
        victim.remove(force=True)
        replaced = eventually(
            lambda: any(
                d["status"] == "ACTIVE" and d["id"] != first["id"]
                for d in deployments(platform, service["id"])
            ),
            timeout=90,
        )
        active = next(d for d in deployments(platform, service["id"]) if d["status"] == "ACTIVE")
        assert eventually(lambda: len(containers_of(docker_client, deployment=active["id"])) == 2)
        time.sleep(1)
    print(f"\nlocal replica removed: replaced by {active['id']}; {loop.summary()}")

    assert replaced, deployments(platform, service["id"])
    # Only a request in flight inside the removed replica may fail; a stall over 2 s counts as one.
    assert all(at - removed_at < 1.0 for at in loop.failed_at), (loop.failures, loop.failed_at)
    assert set(loop.answers) == {"gone v1"}
    assert platform.get(service).text.strip() == "gone v1"
