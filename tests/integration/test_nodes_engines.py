"""Simulated nodes (tests/support/nodes.py) for real: Docker Engines side by side with the machine's main
engine, each pulling from a loopback registry and serving on its own bridge; one killed as a VM dies; and
nothing of them left on the machine afterwards."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path

import docker
import httpx
import pytest

from tests.support import missing_component
from tests.support.images import build_http_image
from tests.support.nodes import Fleet, NodeEngine, NodeEngineError, NodeInUse, dockerd_command
from tests.support.registry import PushedImage, Registry, push_image

pytestmark = pytest.mark.timeout(90)

BODY = "hello from a simulated node"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Replica:
    """An HTTP container: `url` by its bridge IP (as Traefik reaches replicas), `published` on its node's
    address (as an agent publishes ports)."""

    container_id: str
    ip: str
    url: str
    published: str | None


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    if reason := NodeEngine.available():
        missing_component(reason)
    with Fleet(3) as running:
        yield running
    assert running.leftovers() == []


@pytest.fixture(scope="module")
def app_image(docker_client: docker.DockerClient, registry: Registry) -> Iterator[PushedImage]:
    """Built on the main engine (which keeps it, for `main_replica`), pushed for the nodes to pull."""
    local = f"dockyard-test/nodes-web:{uuid.uuid4().hex[:8]}"
    build_http_image(docker_client, local, BODY)
    pushed = push_image(docker_client, registry, local, "nodes/web")
    yield pushed
    for ref in (pushed.tagged, local):
        docker_client.images.remove(ref, force=True)


@pytest.fixture(scope="module")
def main_replica(docker_client: docker.DockerClient, app_image: PushedImage) -> Iterator[Replica]:
    """A replica on the main engine, on docker0: the node engines must never cut it off."""
    container = docker_client.containers.run(
        app_image.tagged, detach=True, name=f"dockyard-test-nodes-{uuid.uuid4().hex[:8]}"
    )
    try:
        container.reload()
        ip = container.attrs["NetworkSettings"]["IPAddress"]
        yield wait_for_answer(Replica(container.id, ip, f"http://{ip}:8080/", None))
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def replicas(fleet: Fleet, app_image: PushedImage, registry: Registry) -> dict[str, Replica]:
    """One replica per node, each node pulling the image itself; by node name."""
    with ThreadPoolExecutor(max_workers=len(fleet.nodes)) as pool:
        started = pool.map(lambda node: run_replica(node, app_image, registry), fleet.nodes)
        return {node.name: replica for node, replica in zip(fleet.nodes, started, strict=True)}


def run_replica(node: NodeEngine, image: PushedImage, registry: Registry) -> Replica:
    with closing(node.client()) as client:
        client.images.pull(image.ref, auth_config=registry.auth_config())
        container = client.containers.run(
            image.ref, detach=True, name="web", ports={"8080/tcp": (node.address, None)}
        )
        container.reload()
        settings = container.attrs["NetworkSettings"]
        ip, port = settings["IPAddress"], settings["Ports"]["8080/tcp"][0]["HostPort"]
    replica = Replica(container.id, ip, f"http://{ip}:8080/", f"http://{node.address}:{port}/")
    return wait_for_answer(replica)


def answer(url: str, timeout: float = 1) -> str | None:
    try:
        return httpx.get(url, timeout=timeout, trust_env=False).text
    except httpx.TransportError:
        return None


def wait_for_answer(replica: Replica, seconds: float = 15) -> Replica:
    deadline = time.monotonic() + seconds
    while answer(replica.url) != BODY or (replica.published and answer(replica.published) != BODY):
        assert time.monotonic() < deadline, f"{replica} does not answer within {seconds:g}s"
        time.sleep(0.1)
    return replica


# --- the fleet -----------------------------------------------------------------------------------------


def test_the_dockerd_of_a_node_shares_no_path_bridge_or_iptables_chain_with_the_main_engine() -> None:
    node = NodeEngine(1)
    root = "/tmp/dockyard-nodes/node1"

    command = dockerd_command(node.root, node.bridge, node.address_pool, node.cgroup_parent)

    assert command == [
        "dockerd",
        *("--config-file", f"{root}/daemon.json", "--host", f"unix://{root}/docker.sock"),
        *("--data-root", f"{root}/data", "--exec-root", f"{root}/exec", "--pidfile", f"{root}/dockerd.pid"),
        *("--bridge", "dy-node1", "--iptables=false", "--ip-masq=false"),
        *("--default-address-pool", "base=10.21.0.0/16,size=24", "--cgroup-parent", "dockyard-node-node1"),
    ]
    assert (node.address, node.subnet, node.gateway) == ("127.0.0.11", "10.21.0.0/24", "10.21.0.1")
    assert node.docker_host == f"unix://{root}/docker.sock"


def test_three_engines_start_each_with_its_own_containerd_bridge_and_images(fleet: Fleet) -> None:
    containerds, subnets = set(), []
    for node in fleet.nodes:
        with closing(node.client()) as client:
            info = client.info()
            images = client.images.list()
        containerds.add((node.containerd_address.parent / "containerd.pid").read_text())
        subnets.append(ip_network(node.subnet))
        assert info["DockerRootDir"] == f"{node.root}/data"
        assert images == [], "a fresh node has no image: everything it runs, it pulls"
        assert "127.0.0.0/8" in info["RegistryConfig"]["InsecureRegistryCIDRs"]  # pulls over plain HTTP
        assert f"{node.gateway}/24" in bridge_addresses(node.bridge)
    assert len(containerds) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    assert Path("/sys/class/net/docker0").is_dir(), "the main engine's bridge is still there"


def test_a_node_name_in_use_is_refused_without_touching_its_engine(fleet: Fleet) -> None:
    node = fleet.nodes[0]

    with pytest.raises(NodeInUse):
        NodeEngine(node.index).start()

    with closing(node.client()) as client:
        assert client.ping()


def test_each_node_pulls_from_the_loopback_registry_and_serves_on_its_bridge_ip(
    fleet: Fleet, replicas: dict[str, Replica], app_image: PushedImage, main_replica: Replica
) -> None:
    for node in fleet.nodes:
        replica = replicas[node.name]
        with closing(node.client()) as client:
            assert client.images.get(app_image.ref).attrs["RepoDigests"] == [app_image.ref]
        assert ip_address(replica.ip) in ip_network(node.subnet)
        assert answer(replica.url) == BODY
        assert replica.published is not None and replica.published.startswith(f"http://{node.address}:")
        assert answer(replica.published) == BODY
    assert answer(main_replica.url) == BODY


def test_a_killed_node_loses_its_replica_and_nothing_else(
    fleet: Fleet, replicas: dict[str, Replica], main_replica: Replica
) -> None:
    victim, survivors = fleet.nodes[1], [fleet.nodes[0], fleet.nodes[2]]
    lost = replicas[victim.name]

    victim.kill()

    assert answer(lost.url) is None
    assert lost.published is not None and answer(lost.published) is None
    assert [item for item in victim.leftovers() if item.startswith("process")] == []
    for node in survivors:
        assert answer(replicas[node.name].url) == answer(replicas[node.name].published or "") == BODY
    assert answer(main_replica.url) == BODY

    with NodeEngine(victim.index) as reborn, closing(reborn.client()) as client:
        assert client.containers.list(all=True) == [] and client.images.list() == []
    assert reborn.leftovers() == []


def test_stopping_a_fleet_leaves_nothing_behind_even_after_a_kill(
    app_image: PushedImage, registry: Registry
) -> None:
    fleet = Fleet(2).start()
    try:
        replicas = [run_replica(node, app_image, registry) for node in fleet.nodes]
        with closing(fleet.nodes[1].client()) as client:
            client.networks.create("extra")  # dockerd makes a bridge br-<id> for it
        fleet.nodes[0].kill()
    finally:
        fleet.stop()

    assert fleet.leftovers() == []
    for node, replica in zip(fleet.nodes, replicas, strict=True):
        assert not node.shim_socket(replica.container_id).exists()


def test_a_fleet_that_fails_to_start_stops_the_nodes_that_started() -> None:
    fleet = Fleet(2).claim()
    doomed, clash = fleet.nodes[1], "dy-test-clash"
    taken = ip_network(doomed.address_pool)[5 * 256 + 1]  # in the node's pool, outside its bridge's subnet
    try:
        subprocess.run(["ip", "link", "add", clash, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{taken}/24", "dev", clash], check=True)
        with pytest.raises(NodeEngineError, match=f"{doomed.name}: its pool .* overlaps"):
            fleet.start()
    finally:
        fleet.stop()
        subprocess.run(["ip", "link", "delete", clash], check=True)

    assert fleet.leftovers() == []


def test_a_node_left_by_a_crashed_test_run_is_cleared_by_the_next_start() -> None:
    probe = Fleet(1).claim().nodes[0]
    probe.stop()  # claimed only to learn a free name, released for the crashing run
    index = probe.index
    crashed = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RUN, str(index)], cwd=REPO_ROOT, stdout=subprocess.PIPE
    )
    try:
        assert crashed.stdout is not None and crashed.stdout.readline() == b"ready\n"
        crashed.kill()  # as pytest-timeout or ^C does: its dockerd and containerd live on, orphaned
        crashed.wait()
        orphans = NodeEngine(index).leftovers()
        assert any("dockerd" in item for item in orphans) and any("containerd" in item for item in orphans)

        with NodeEngine(index) as node, closing(node.client()) as client:
            assert client.ping()
        assert node.leftovers() == []
    finally:
        crashed.kill()
        crashed.wait()
        if crashed.stdout is not None:
            crashed.stdout.close()
        NodeEngine(index).stop()


CRASHING_RUN = """
import sys, time
from tests.support.nodes import NodeEngine
NodeEngine(int(sys.argv[1])).start()
print("ready", flush=True)
time.sleep(120)
"""


def bridge_addresses(bridge: str) -> str:
    return subprocess.run(
        ["ip", "-4", "-o", "addr", "show", bridge], capture_output=True, text=True, check=True
    ).stdout
