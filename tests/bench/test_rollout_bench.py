"""Rollouts and rollbacks of one service with 3 replicas on 3 enrolled nodes (each its own Docker Engine and
agent), with a bounded request loop through Traefik running throughout, against a baseline measured in the
same run, under the same request loop.

What is compared:
  rollout   a deploy of a new version v(n) → v(n+1), ROLLOUTS times. Dockyard: from the deploy API call to
            the first answer of v(n+1) through Traefik, to the deployment ACTIVE, and to "settled" (the old
            replicas removed, one new replica left per node); requests sent and failed meanwhile.
            Baseline: on the 3 node engines at once, `docker pull` of an image none of them has yet,
            `docker run` publishing its port on the node's address as the agent does, and waiting until it
            answers 200: the least work that gets a new version answering on every node.
  rollback  a rollback to the deployment before the ACTIVE one, ROLLBACKS times, alternating between the
            last two versions so that every rollback changes what is served. Dockyard: from the rollback API
            call to the old version answering through Traefik (goal: under 3 s). Baseline: `docker run` of
            that version's image, already on every node, on the 3 node engines at once, until each answers.

Prints figures; asserts nothing about time. It does assert correctness: every release goes ACTIVE, ends with
one replica per node, and no request of the loop fails (a failed request during an update is a bug, not a
slow figure; the e2e test of the same path asserts it too). Run: scripts/bench.sh (or pytest tests/bench
-m bench -s).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import docker
import httpx
import pytest

from tests.support.fleet import EnrolledFleet, FleetNode
from tests.support.platform import FINAL, AppImages, Platform
from tests.support.traffic import RequestLoop, hostname

pytestmark = [pytest.mark.bench, pytest.mark.timeout(600)]

REPOSITORY = "bench/rollout"
ROLLOUTS = 3
ROLLBACKS = 5
ROLLBACK_GOAL_SECONDS = 3.0
REPLICAS = 3
POLL_SECONDS = 0.02
RELEASE_TIMEOUT_SECONDS = 120
TAIL_SECONDS = 0.5  # the loop goes on this long after the old replicas are gone
LOOP_MAX_SECONDS = 150  # each request loop is bounded in count and time, and only talks to loopback
LOOP_PAUSE_SECONDS = 0.005


# --- dockyard -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """One deploy or rollback: seconds from the API call, and what the request loop saw meanwhile."""

    answered: float  # the new version's first answer through Traefik
    active: float  # the deployment ACTIVE in the API
    settled: float  # only the new deployment's replicas left on the nodes, one per node
    requests: int
    failures: list[str]
    went_back: int  # answers of the previous version after the new one first answered
    deployment: dict[str, Any] = field(repr=False)


def replicas_by_node(fleet: EnrolledFleet, service_id: str) -> dict[str, list[str]]:
    """The deployment id of every replica of the service, by node, as each node's agent lists them."""

    async def listing() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for node in fleet.nodes:
            async with fleet.client(node.index) as agent:
                replicas = await agent.replicas(service_id=service_id)
            found[node.name] = sorted(str(replica.deployment_id) for replica in replicas)
        return found

    return asyncio.run(listing())


def wait_settled(fleet: EnrolledFleet, service_id: str, deployment_id: str) -> None:
    wanted = {node.name: [deployment_id] for node in fleet.nodes}
    deadline = time.monotonic() + RELEASE_TIMEOUT_SECONDS
    while (found := replicas_by_node(fleet, service_id)) != wanted:
        assert time.monotonic() < deadline, (
            f"replicas never settled on one per node of {deployment_id}: {found}"
        )
        time.sleep(POLL_SECONDS)


def follow(
    platform: Platform, loop: RequestLoop, deployment_id: str, body: str, started: float
) -> tuple[float, float, dict[str, Any]]:
    """Seconds since `started` to the first answer of `body` and to the deployment ACTIVE (both watched
    at once, whichever comes first), and the final deployment."""
    answered: float | None = None
    active: tuple[float, dict[str, Any]] | None = None
    deadline = time.monotonic() + RELEASE_TIMEOUT_SECONDS
    while answered is None or active is None:
        if answered is None and body in loop.first_seen:
            answered = loop.first_seen[body] - started
        if active is None:
            deployment = platform.api.get(f"/v1/deployments/{deployment_id}").json()
            if deployment["status"] in FINAL:
                assert deployment["status"] == "ACTIVE", deployment
                active = (time.perf_counter() - started, deployment)
        assert time.monotonic() < deadline and not loop.bounded_out, (
            f"{deployment_id}: answered {answered}, ACTIVE {active}, loop sent {loop.sent}"
        )
        time.sleep(POLL_SECONDS)
    return answered, active[0], active[1]


def measure(
    platform: Platform,
    fleet: EnrolledFleet,
    service: dict[str, Any],
    release: Callable[[], dict[str, Any]],
    body: str,
    previous: str,
) -> Release:
    """`release()` (a deploy or a rollback call) from a settled service serving `previous` to one
    serving `body`, under the request loop from before the call until after the old replicas are gone."""
    with RequestLoop(platform.edge_url, hostname(service), max_seconds=LOOP_MAX_SECONDS) as loop:
        loop.first(previous)  # the loop is up and the clock starts from a service serving `previous`
        started = time.perf_counter()
        deployment = release()
        answered, active, final = follow(platform, loop, deployment["id"], body, started)
        wait_settled(fleet, service["id"], deployment["id"])
        settled = time.perf_counter() - started
        time.sleep(TAIL_SECONDS)
    assert platform.get(service).text.strip() == body
    return Release(answered, active, settled, loop.sent, list(loop.failures), loop.others_after(body), final)


def rollback(platform: Platform, service: dict[str, Any], deployment_id: str) -> dict[str, Any]:
    response = platform.api.post(
        f"/v1/services/{service['id']}/rollback", json={"deployment_id": deployment_id}
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


# --- baseline: plain docker on the node engines -------------------------------------------------------


def first_200(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(LOOP_PAUSE_SECONDS)
    raise TimeoutError(f"{url} never answered 200")


@contextmanager
def node_clients(fleet: EnrolledFleet) -> Iterator[list[docker.DockerClient]]:
    clients = [node.engine.client() for node in fleet.nodes]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def docker_release(
    fleet: EnrolledFleet, clients: list[docker.DockerClient], image: str, auth: dict[str, str] | None
) -> float:
    """On every node at once: `docker pull` (when `auth` is given), `docker run` publishing the port on the
    node's address as the agent does, then the first 200 from it. Seconds until the last node answers."""
    containers: list[Any] = []

    def one(node: FleetNode, client: docker.DockerClient) -> None:
        if auth is not None:
            repository, tag = image.rsplit(":", 1)
            client.images.pull(repository, tag=tag, auth_config=auth)
        container = client.containers.run(
            image, detach=True, ports={"8080/tcp": (node.engine.address, None)}, environment={"PORT": "8080"}
        )
        containers.append(container)
        container.reload()
        host_port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        first_200(f"http://{node.engine.address}:{host_port}/")

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=len(fleet.nodes)) as pool:
            for done in [
                pool.submit(one, node, client) for node, client in zip(fleet.nodes, clients, strict=True)
            ]:
                done.result()
        return time.perf_counter() - started
    finally:
        for container in containers:
            container.remove(force=True)


def under_loop(platform: Platform, service: dict[str, Any], serving: str, run: Callable[[], float]) -> float:
    """The baseline under the same request loop as Dockyard's side (the service keeps serving `serving`)."""
    with RequestLoop(platform.edge_url, hostname(service), max_seconds=LOOP_MAX_SECONDS) as loop:
        loop.first(serving)
        seconds = run()
    assert loop.failures == [], loop.failures[:3]
    return seconds


# --- the run --------------------------------------------------------------------------------------------


def test_rollouts_and_rollbacks_on_three_nodes_against_docker_run(
    platform: Platform, app_images: AppImages, enrolled_fleet: EnrolledFleet
) -> None:
    fleet = enrolled_fleet
    bodies = [f"rollout v{n}" for n in range(1, ROLLOUTS + 2)]
    images = [app_images.push(REPOSITORY, f"v{n}", body) for n, body in enumerate(bodies, start=1)]
    fresh = [app_images.push(REPOSITORY, f"docker-{n}", f"docker v{n}") for n in range(1, ROLLOUTS + 1)]

    service = platform.create_service(
        "bench-rollout", "rollout", images[0], replicas=REPLICAS, health_check_path="/healthz"
    )
    first = platform.wait_final(platform.deploy(service["id"])["id"], timeout=RELEASE_TIMEOUT_SECONDS)
    assert first["status"] == "ACTIVE", first  # warm-up too: every node pulls the base layers once
    wait_settled(fleet, service["id"], first["id"])

    deployments = [first]
    rollouts: list[Release] = []
    rollout_baseline: list[float] = []
    with node_clients(fleet) as clients:
        for n in range(ROLLOUTS):  # interleaved, so both sides see the same machine load
            rollout_baseline.append(
                under_loop(
                    platform,
                    service,
                    bodies[n],
                    partial(docker_release, fleet, clients, fresh[n], platform.registry_auth),
                )
            )
            released = measure(
                platform,
                fleet,
                service,
                partial(platform.deploy, service["id"], image=images[n + 1]),
                bodies[n + 1],
                bodies[n],
            )
            rollouts.append(released)
            deployments.append(released.deployment)

        # Back and forth between the last two versions: every rollback changes what is served.
        versions = [(deployments[-2], bodies[-2]), (deployments[-1], bodies[-1])]
        rollbacks: list[Release] = []
        rollback_baseline: list[float] = []
        for n in range(ROLLBACKS):
            (target, body), (_, serving) = versions[n % 2], versions[(n + 1) % 2]
            pinned = target["image_ref"]
            for client in clients:
                client.images.get(pinned)  # on every node already: the baseline pulls nothing
            rollback_baseline.append(
                under_loop(platform, service, serving, partial(docker_release, fleet, clients, pinned, None))
            )
            rollbacks.append(
                measure(
                    platform,
                    fleet,
                    service,
                    partial(rollback, platform, service, target["id"]),
                    body,
                    serving,
                )
            )
            assert rollbacks[-1].deployment["image_ref"] == pinned

    print()
    print(report_rollouts(rollouts, rollout_baseline))
    print(report_rollbacks(rollbacks, rollback_baseline))
    for name, releases in (("rollout", rollouts), ("rollback", rollbacks)):
        for number, released in enumerate(releases, start=1):
            assert released.failures == [], f"{name} {number}: {released.failures[:5]}"


# --- figures --------------------------------------------------------------------------------------------


def _rounds(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def _requests(releases: list[Release]) -> str:
    sent = sum(r.requests for r in releases)
    failed = sum(len(r.failures) for r in releases)
    went_back = sum(r.went_back for r in releases)
    return (
        f"{sent} requests through Traefik, {failed} failed (goal: 0),"
        f" {went_back} answered by the previous version after the new one had"
    )


def _ratio(ours: list[float], baseline: list[float]) -> str:
    mine, theirs = statistics.median(ours), statistics.median(baseline)
    return f"{mine / theirs:.2f}x, {mine - theirs:+.2f} s"


def report_rollouts(rollouts: list[Release], baseline: list[float]) -> str:
    lines = [
        f"[bench] rolling update v(n) → v(n+1) of {REPLICAS} replicas on 3 nodes, {len(rollouts)} rounds,"
        " seconds from the deploy call:"
    ]
    for number, r in enumerate(rollouts, start=1):
        lines.append(
            f"[bench]   round {number}: first answer of the new version {r.answered:.2f},"
            f" ACTIVE {r.active:.2f}, old replicas gone {r.settled:.2f};"
            f" {r.requests} requests, {len(r.failures)} failed"
        )
    answered, active = [r.answered for r in rollouts], [r.active for r in rollouts]
    lines += [
        f"[bench]   first answer {_spread(answered)}; ACTIVE {_spread(active)};"
        f" old replicas gone {_spread([r.settled for r in rollouts])}",
        f"[bench]   {_requests(rollouts)}",
        f"[bench]   baseline docker pull + docker run → first 200 on the 3 nodes at once: {_spread(baseline)}"
        f" (rounds: {_rounds(baseline)})",
        f"[bench]   over the baseline: first answer {_ratio(answered, baseline)};"
        f" ACTIVE {_ratio(active, baseline)}",
    ]
    return "\n".join(lines)


def report_rollbacks(rollbacks: list[Release], baseline: list[float]) -> str:
    answered = [r.answered for r in rollbacks]
    median = statistics.median(answered)
    verdict = "met" if median < ROLLBACK_GOAL_SECONDS else "MISSED"
    return "\n".join(
        [
            f"[bench] rollback → the old version answering through Traefik, {len(rollbacks)} rounds:"
            f" {_spread(answered)} (rounds: {_rounds(answered)});"
            f" goal < {ROLLBACK_GOAL_SECONDS:g} s: {verdict}",
            f"[bench]   ACTIVE {_spread([r.active for r in rollbacks])};"
            f" old replicas gone {_spread([r.settled for r in rollbacks])}",
            f"[bench]   {_requests(rollbacks)}",
            f"[bench]   baseline docker run (image present) → first 200 on the 3 nodes at once:"
            f" {_spread(baseline)} (rounds: {_rounds(baseline)})",
            f"[bench]   over the baseline: {_ratio(answered, baseline)}",
        ]
    )
