"""Enrolled nodes for end-to-end tests: one simulated node engine (tests/support/nodes.py) per node, and
on each a real `dockyard agent` that enrolled with the running platform through a join token and serves
HTTPS with mutual TLS on the node's loopback address.

with EnrolledFleet(platform, count=3) as fleet:         # or the `enrolled_fleet` fixture below
    node = fleet.nodes[0]
    node.node_id, node.name, node.labels                # "node_…", "fleet-1a2b3c-node1", {"zone": "a", …}
    node.address                                        # "127.0.0.11:40123": where the control plane calls
    node.engine.docker_host                             # the node's own Docker Engine
    async with fleet.client(0) as agent: ...            # AgentClient over mutual TLS, as a worker makes it
    fleet.stop_agent(1); fleet.start_agent(1)           # restarted without a token: same identity
    fleet.kill_node(2)                                  # a dead VM: agent SIGKILLed, engine killed

Every node carries the label `fleet=<fleet id>` besides its own (`zone=a|b|c` round-robin by default),
so a test can pin replicas to its own nodes with a constraint. Node names start with `fleet-<fleet id>-`:
the platform is shared by the whole e2e session, so names never clash and teardown removes exactly this
fleet's nodes (`DELETE /v1/nodes/{id}`, which also revokes their certificates), also after a failed start.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import pytest

from core import pki
from core.agent_client import AgentClient, AgentTLS
from tests.support import missing_component
from tests.support.components import REPO_ROOT
from tests.support.nodes import Fleet, NodeEngine
from tests.support.platform import Platform
from tests.support.process import LoopbackServer, free_port

AGENT_START_TIMEOUT_SECONDS = 60  # three agents importing at once on a small machine
AGENT_STOP_TIMEOUT_SECONDS = 15  # SIGTERM, then SIGKILL
READY_TIMEOUT_SECONDS = 30
ZONES = ("a", "b", "c")


class FleetError(RuntimeError):
    pass


class NodeAgent(LoopbackServer):
    """`dockyard agent` of one node: enrolls first when given a join token, else re-adopts the identity
    in its state directory. Its log, `agent.log`, is appended to across restarts."""

    name = "dockyard agent"
    slug = "agent"
    stop_timeout_seconds: ClassVar[float] = AGENT_STOP_TIMEOUT_SECONDS

    def __init__(self, workdir: Path, host: str, port: int, environment: Mapping[str, str]) -> None:
        super().__init__(start_timeout_seconds=AGENT_START_TIMEOUT_SECONDS, workdir=workdir)
        self.host = host
        self.port = port
        self.state_dir = workdir / "state"  # made by the agent (0700)
        self.join: list[str] = []  # --join … --token … for the first start only
        self._environment = dict(environment)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def node_id(self) -> str:
        return str(json.loads((self.state_dir / "node.json").read_text())["node_id"])

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, root: Path) -> list[str]:
        return [sys.executable, "-m", "cli", "agent", *self.join]

    def environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
        return inherited | self._environment

    def ready(self) -> bool:
        """Listening means enrolled: the agent enrolls (or loads its identity) before it serves."""
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((self.host, self.port)) == 0

    def kill(self) -> None:
        """SIGKILL, no goodbye: as the agent of a VM that dies."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=AGENT_STOP_TIMEOUT_SECONDS)
            self._process = None


@dataclass(frozen=True)
class FleetNode:
    index: int  # position in the fleet, as kill_node/stop_agent/start_agent take it
    node_id: str
    name: str
    labels: dict[str, str]
    engine: NodeEngine
    agent: NodeAgent

    @property
    def address(self) -> str:
        """host:port of the node's agent API, as it enrolled and as the control plane calls it."""
        return self.agent.address


class EnrolledFleet:
    """`count` nodes enrolled with `platform`, each a node engine plus an mTLS agent. `start` waits
    until `GET /v1/nodes` lists every node READY; `stop` (idempotent) stops the agents, removes the
    nodes from the platform and stops the engines, whatever failed before."""

    def __init__(
        self,
        platform: Platform,
        count: int = 3,
        labels: Sequence[Mapping[str, str]] | None = None,
        workdir: Path | None = None,
    ) -> None:
        if labels is not None and len(labels) != count:
            raise ValueError(f"labels for {len(labels)} nodes given, for a fleet of {count}")
        self.platform = platform
        self.count = count
        self.fleet_id = uuid.uuid4().hex[:6]
        self.prefix = f"fleet-{self.fleet_id}-"
        self.labels = [
            {**(labels[i] if labels is not None else {"zone": ZONES[i % len(ZONES)]}), "fleet": self.fleet_id}
            for i in range(count)
        ]
        # Logs and agent state; by default beside the platform's state, removed with the session's workdir.
        self.workdir = workdir or platform.state_dir.parent / f"fleet-{self.fleet_id}"
        self.api_url = f"http://127.0.0.1:{platform.env['DOCKYARD_API_PORT']}"
        self.engines = Fleet(count)
        self.agents: list[NodeAgent] = []
        self.nodes: list[FleetNode] = []

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        try:
            self.engines.start()
            self.agents = [self._agent(engine) for engine in self.engines.nodes]
            for agent, labels in zip(self.agents, self.labels, strict=True):
                agent.join = self._join_arguments(labels)
            with ThreadPoolExecutor(max_workers=self.count) as pool:
                for started in [pool.submit(agent.start) for agent in self.agents]:
                    started.result()
            self.nodes = self._wait_until_ready()
        except BaseException as exc:
            try:
                self.stop()
            except Exception as cleanup:
                exc.add_note(f"and the fleet's teardown failed too: {cleanup!r}")
            raise
        return self

    def stop(self) -> None:
        """Agents first (a stopping agent may still be called), then the platform's records, then the
        engines. Every step runs even when one before failed; the first failure is raised at the end."""
        errors: list[Exception] = []
        with ThreadPoolExecutor(max_workers=max(1, len(self.agents))) as pool:
            stopped = [pool.submit(agent.stop) for agent in self.agents]
        errors += [error for future in stopped if isinstance(error := future.exception(), Exception)]
        try:
            self._remove_nodes()
        except Exception as exc:
            errors.append(exc)
        try:
            self.engines.stop()
        except Exception as exc:
            errors.append(exc)
        if errors:
            raise FleetError(f"fleet {self.fleet_id} did not stop cleanly: {errors}") from errors[0]

    def leftovers(self) -> list[str]:
        """What of this fleet is still there: agent processes, nodes the platform lists, engine parts."""
        found = [f"agent of {agent.address} still running" for agent in self.agents if agent.running]
        found += [f"node {node['name']} ({node['id']}) still listed" for node in self._listed()]
        return found + self.engines.leftovers()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what operations tests do to nodes ---------------------------------------------------------------

    def kill_node(self, index: int) -> None:
        """Lose the node as a VM dies: its agent SIGKILLed, its engine and containers with it. The
        platform still lists it (nothing marks a node DOWN yet)."""
        node = self.nodes[index]
        node.agent.kill()
        node.engine.kill()

    def stop_agent(self, index: int) -> None:
        """SIGTERM the agent (SIGKILL after AGENT_STOP_TIMEOUT_SECONDS); the engine and replicas stay."""
        self.nodes[index].agent.stop()

    def start_agent(self, index: int) -> None:
        """Start the node's agent again, without a token, on the address it enrolled with: it re-adopts
        its identity from its state directory. (After `kill_node` its engine stays dead.)"""
        node = self.nodes[index]
        if node.agent.running:
            raise FleetError(f"the agent of {node.name} is running already")
        node.agent.join = []
        node.agent.start()
        if node.agent.node_id != node.node_id:
            raise FleetError(f"{node.name} came back as {node.agent.node_id}, not {node.node_id}")

    def client(self, index: int, timeout: float = 10) -> AgentClient:
        """The control plane's client of node `index`, as a worker makes it: the platform's control-plane
        certificate, this node's identity expected, removed nodes' certificates refused."""
        node = self.nodes[index]
        tls = AgentTLS.from_pki_dir(self.platform.state_dir / "pki", node.node_id, self._revoked_serials())
        return AgentClient.for_node(node.address, tls, timeout=timeout)

    def listed(self) -> dict[str, dict[str, Any]]:
        """This fleet's nodes as `GET /v1/nodes` answers them, by name."""
        return {node["name"]: node for node in self._listed()}

    # --- steps -------------------------------------------------------------------------------------------

    def _agent(self, engine: NodeEngine) -> NodeAgent:
        workdir = self.workdir / engine.name
        workdir.mkdir(parents=True, exist_ok=True)
        registry = self.platform.registry_auth
        port = free_port(engine.address)
        environment = {
            "DOCKYARD_AGENT_NODE_NAME": f"{self.prefix}{engine.name}",
            "DOCKYARD_AGENT_NODE_ADDRESS": engine.address,
            "DOCKYARD_AGENT_LISTEN_HOST": engine.address,
            "DOCKYARD_AGENT_LISTEN_PORT": str(port),
            "DOCKYARD_AGENT_DOCKER_HOST": engine.docker_host,
            "DOCKYARD_AGENT_STATE_DIR": str(workdir / "state"),
            "DOCKYARD_AGENT_REGISTRY_HOST": self.platform.registry_host,
            "DOCKYARD_AGENT_REGISTRY_USERNAME": registry["username"],
            "DOCKYARD_AGENT_REGISTRY_PASSWORD": registry["password"],
            "XDG_STATE_HOME": str(workdir / "xdg"),  # never a developer's own `dockyard up` installation
            "PYTHONPATH": str(REPO_ROOT),
        }
        return NodeAgent(workdir, engine.address, port, environment)

    def _join_arguments(self, labels: Mapping[str, str]) -> list[str]:
        response = self.platform.api.post("/v1/nodes/join-tokens", json={"ttl_seconds": 600})
        if response.status_code != 201:
            raise FleetError(f"no join token: {response.status_code} {response.text}")
        answer = response.json()
        argv = [
            "--join",
            self.api_url,
            "--token",
            answer["token"],
            "--ca-fingerprint",
            answer["ca_fingerprint"],
        ]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        return argv

    def _wait_until_ready(self) -> list[FleetNode]:
        names = [f"{self.prefix}{engine.name}" for engine in self.engines.nodes]
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            listed = self.listed()
            states = {name: listed[name]["state"] if name in listed else "not listed" for name in names}
            if all(state == "READY" for state in states.values()):
                break
            if time.monotonic() > deadline:
                raise FleetError(f"nodes not READY after {READY_TIMEOUT_SECONDS}s: {states}")
            time.sleep(0.2)
        nodes = []
        for index, (name, engine, agent) in enumerate(
            zip(names, self.engines.nodes, self.agents, strict=True)
        ):
            node = listed[name]
            if (node["id"], node["address"]) != (agent.node_id, agent.address):
                raise FleetError(
                    f"{name} is listed as {node['id']} at {node['address']}, "
                    f"but its agent is {agent.node_id} at {agent.address}"
                )
            nodes.append(FleetNode(index, node["id"], name, dict(node["labels"]), engine, agent))
        return nodes

    def _listed(self) -> list[dict[str, Any]]:
        response = self.platform.api.get("/v1/nodes")
        if response.status_code != 200:
            raise FleetError(f"GET /v1/nodes: {response.status_code} {response.text}")
        return [node for node in response.json() if node["name"].startswith(self.prefix)]

    def _remove_nodes(self) -> None:
        """Every node of this fleet the platform lists, also one whose agent enrolled but never served."""
        for node in self._listed():
            # force: the test's services die with its fleet
            response = self.platform.api.delete(f"/v1/nodes/{node['id']}", params={"force": True})
            if response.status_code != 200:
                raise FleetError(f"DELETE /v1/nodes/{node['id']}: {response.status_code} {response.text}")

    def _revoked_serials(self) -> set[int]:
        """What a worker reads from the database, here from the API: removed nodes' certificates."""
        response = self.platform.api.get("/v1/nodes", params={"include_removed": True})
        response.raise_for_status()
        return {pki.parse_serial(node["cert_serial"]) for node in response.json() if node["removed_at"]}


@pytest.fixture
def enrolled_fleet(request: pytest.FixtureRequest, platform: Platform) -> Iterator[EnrolledFleet]:
    """Three enrolled nodes (zones a, b, c); `@pytest.mark.parametrize("enrolled_fleet", [{"count": 5}],
    indirect=True)` passes other EnrolledFleet arguments. Fails at teardown when anything is left."""
    if reason := NodeEngine.available():
        missing_component(reason)
    options: dict[str, Any] = getattr(request, "param", {})
    with EnrolledFleet(platform, **options) as fleet:
        yield fleet
    assert fleet.leftovers() == []


__all__ = ["EnrolledFleet", "FleetError", "FleetNode", "NodeAgent", "enrolled_fleet"]
