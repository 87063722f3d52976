"""Mutual TLS between the control plane and real agents: the API (`dockyard api`) and agents
(`dockyard agent --join ... --token ...`) run as processes, each agent on its own loopback address, and
the control plane's client (activities/agent_client.py) calls them with the CA the API made."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import ssl
import stat
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import docker
import httpx
import pytest
from sqlalchemy import select

from core import mtls, pki
from core.agent_client import AgentCallError, AgentClient, AgentTLS
from core.db import Database
from core.models import RevokedCertificate
from tests.support import DOCKER_HOST
from tests.support.components import REPO_ROOT
from tests.support.process import LoopbackServer, LoopbackServerError, free_port

pytestmark = pytest.mark.timeout(120)

API_TOKEN = "mtls-test-api-token"


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any DOCKYARD_* setting, plus `variables`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    return inherited | variables


class ApiProcess(LoopbackServer):
    name = "dockyard api"
    slug = "api"

    def __init__(self, state_dir: Path) -> None:
        super().__init__(start_timeout_seconds=60, workdir=state_dir)
        self.state_dir = state_dir
        self.port = free_port()
        self.gateway_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.gateway_url = f"https://127.0.0.1:{self.gateway_port}"
        self.database_url = f"sqlite+aiosqlite:///{state_dir / 'dockyard.db'}"

    def command(self, root: Path) -> list[str]:
        return [sys.executable, "-m", "cli", "api"]

    def environment(self) -> dict[str, str]:
        return clean_environment(
            DOCKYARD_STATE_DIR=str(self.state_dir),
            DOCKYARD_API_PORT=str(self.port),
            DOCKYARD_AGENT_GATEWAY_PORT=str(self.gateway_port),
            DOCKYARD_API_TOKEN=API_TOKEN,
            DOCKYARD_DATABASE_URL=self.database_url,
            DOCKYARD_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",  # nodes need no Temporal
        )

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30)

    def join_token(self) -> str:
        with self.admin() as http:
            response = http.post("/v1/nodes/join-tokens", json={})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])


class AgentProcess(LoopbackServer):
    """`dockyard agent` on its own loopback address, enrolling first when given a join token."""

    name = "dockyard agent"
    slug = "agent"
    stop_timeout_seconds: ClassVar[float] = 15

    def __init__(
        self,
        api: ApiProcess,
        host: str,
        state_dir: Path,
        join_token: str | None,
        environment: dict[str, str] | None = None,
    ) -> None:
        logs = state_dir.with_name(f"{state_dir.name}-logs")
        logs.mkdir(parents=True, exist_ok=True)
        super().__init__(start_timeout_seconds=60, workdir=logs)  # the agent makes its state directory
        self.extra_environment = environment or {}
        self.api = api
        self.host = host
        self.port = free_port(host)
        self.state_dir = state_dir
        self.join_token = join_token

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def node_id(self) -> str:
        return str(json.loads((self.state_dir / "node.json").read_text())["node_id"])

    def command(self, root: Path) -> list[str]:
        argv = [sys.executable, "-m", "cli", "agent"]
        if self.join_token is not None:
            argv += ["--join", self.api.url, "--token", self.join_token, "--label", "zone=test"]
        return argv

    def environment(self) -> dict[str, str]:
        return clean_environment(
            DOCKYARD_AGENT_LISTEN_HOST=self.host,
            DOCKYARD_AGENT_LISTEN_PORT=str(self.port),
            DOCKYARD_AGENT_NODE_ADDRESS=self.host,
            DOCKYARD_AGENT_NODE_NAME=f"node-{self.host.replace('.', '-')}",
            DOCKYARD_AGENT_STATE_DIR=str(self.state_dir),
            DOCKYARD_AGENT_DOCKER_HOST=DOCKER_HOST,
            PYTHONPATH=str(REPO_ROOT),
            **self.extra_environment,
        )

    def ready(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((self.host, self.port)) == 0


@dataclass
class ControlPlane:
    api: ApiProcess
    root: Path

    @property
    def pki_dir(self) -> Path:
        return self.api.state_dir / "pki"

    async def revoked_serials(self) -> set[int]:
        """What a worker reads before it calls agents."""
        database = Database(self.api.database_url)
        try:
            async with database.session() as session:
                return {pki.parse_serial(s) for s in await session.scalars(select(RevokedCertificate.serial))}
        finally:
            await database.dispose()

    async def client(self, agent: AgentProcess, node_id: str | None = None) -> AgentClient:
        tls = AgentTLS.from_pki_dir(self.pki_dir, node_id or agent.node_id, await self.revoked_serials())
        return AgentClient.for_node(agent.address, tls, timeout=30)

    def agent(self, host: str, join: bool = True, state: str | None = None) -> AgentProcess:
        token = self.api.join_token() if join else None
        return AgentProcess(self.api, host, self.root / (state or host), token)


@pytest.fixture(scope="module")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[ControlPlane]:
    root = tmp_path_factory.mktemp("mtls")
    (root / "api").mkdir()
    with ApiProcess(root / "api") as api:
        yield ControlPlane(api, root)


@pytest.fixture(scope="module")
def node(control_plane: ControlPlane) -> Iterator[AgentProcess]:
    with control_plane.agent("127.0.0.11") as agent:
        yield agent


@pytest.fixture
async def other_node_credentials(
    control_plane: ControlPlane, tmp_path: Path
) -> AsyncIterator[tuple[Path, Path]]:
    """Certificate and key of another enrolled node (no agent process needed): CA-signed, not the
    control plane."""
    key = pki.generate_key()
    name = f"impostor-{secrets.token_hex(3)}"
    body = {
        "token": control_plane.api.join_token(),
        "name": name,
        "csr": pki.csr_pem(pki.make_csr(key, name, ["127.0.0.19"])),
        "address": "127.0.0.19:7801",
    }
    async with httpx.AsyncClient(base_url=control_plane.api.url) as http:
        response = await http.post("/v1/nodes/enroll", json=body)
    assert response.status_code == 201, response.text
    certificate, key_file = tmp_path / "impostor.pem", tmp_path / "impostor.key"
    certificate.write_text(response.json()["certificate"])
    pki.write_private(key_file, pki.private_key_pem(key))
    yield certificate, key_file


def ca_only_context(
    control_plane: ControlPlane, newest: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=control_plane.pki_dir / "ca.pem")
    context.check_hostname = False
    context.maximum_version = newest
    return context


async def assert_refused_by_tls(address: str, context: ssl.SSLContext) -> None:
    """The agent drops the connection before any HTTP. With TLS 1.2 the client sees the handshake
    itself fail; with TLS 1.3 the client's handshake ends first and the server, which verifies the
    client's certificate after that, closes the connection (asyncio sends no alert), so the client
    sees it closed while it writes or reads its request: no HTTP answer either way."""
    async with httpx.AsyncClient(verify=context, timeout=10) as http:
        with pytest.raises(httpx.TransportError) as refused:
            await http.get(f"https://{address}/v1/replicas")
    if context.maximum_version is ssl.TLSVersion.TLSv1_2:
        assert isinstance(refused.value, httpx.ConnectError), repr(refused.value)


# --- the happy path ------------------------------------------------------------------------------


async def test_the_control_plane_calls_an_enrolled_agent_over_mutual_tls(
    control_plane: ControlPlane, node: AgentProcess
) -> None:
    async with await control_plane.client(node) as agent:
        assert agent.node == node.node_id
        assert await agent.replicas(environment_id="env-nothing-here") == []
        info = await agent.node_info()
    assert info.name == "node-127-0-0-11"

    with control_plane.api.admin() as http:
        listed = http.get(f"/v1/nodes/{node.node_id}").json()
    assert (listed["address"], listed["state"], listed["labels"]) == (node.address, "READY", {"zone": "test"})
    assert listed["capacity"]["cpu_millis"] >= 1000
    assert stat.S_IMODE(node.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((node.state_dir / "node.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((control_plane.pki_dir / "ca.key").stat().st_mode) == 0o600


# --- what the agent refuses ----------------------------------------------------------------------


@pytest.mark.parametrize("newest", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
async def test_a_client_without_a_certificate_is_refused_by_tls(
    control_plane: ControlPlane, node: AgentProcess, newest: ssl.TLSVersion
) -> None:
    await assert_refused_by_tls(node.address, ca_only_context(control_plane, newest))


async def test_plain_http_gets_nothing(node: AgentProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        with pytest.raises(httpx.TransportError):
            await http.get(f"http://{node.address}/healthz")


async def test_another_nodes_certificate_is_forbidden(
    control_plane: ControlPlane, node: AgentProcess, other_node_credentials: tuple[Path, Path]
) -> None:
    context = ca_only_context(control_plane)
    context.load_cert_chain(*other_node_credentials)
    impostor = pki.identity_of(pki.load_certificate(other_node_credentials[0].read_bytes()))
    async with httpx.AsyncClient(verify=context, timeout=10) as http:
        response = await http.get(f"https://{node.address}/v1/replicas")
    assert response.status_code == 403
    reason = f"the client certificate is for {impostor}; only dockyard://control-plane may call this agent"
    assert response.json() == {"step": "authenticate", "reason": reason, "replica_id": None}


async def test_prometheus_certificate_reads_metrics_and_nothing_else(
    control_plane: ControlPlane, node: AgentProcess, other_node_credentials: tuple[Path, Path]
) -> None:
    files = pki.ensure_prometheus_certificate(control_plane.pki_dir)
    context = ca_only_context(control_plane)
    context.load_cert_chain(files.prometheus_certificate, files.prometheus_key)
    async with httpx.AsyncClient(verify=context, timeout=10) as http:
        metrics = await http.get(f"https://{node.address}/metrics")
        replicas = await http.get(f"https://{node.address}/v1/replicas")
    assert metrics.status_code == 200 and "node_cpu_seconds_total" in metrics.text
    assert replicas.status_code == 403
    assert "is for dockyard://prometheus; only dockyard://control-plane" in replicas.json()["reason"]
    other = ca_only_context(control_plane)
    other.load_cert_chain(*other_node_credentials)
    async with httpx.AsyncClient(verify=other, timeout=10) as http:
        assert (await http.get(f"https://{node.address}/metrics")).status_code == 403


async def test_a_certificate_from_another_ca_is_refused_by_tls(
    control_plane: ControlPlane, node: AgentProcess, tmp_path: Path
) -> None:
    stranger = pki.create_authority(datetime.now(UTC))
    key = pki.generate_key()
    certificate = pki.issue_control_plane_certificate(stranger, key.public_key(), now=datetime.now(UTC))
    (tmp_path / "cp.pem").write_text(pki.certificate_pem(certificate))
    pki.write_private(tmp_path / "cp.key", pki.private_key_pem(key))
    for newest in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = ca_only_context(control_plane, newest)
        context.load_cert_chain(tmp_path / "cp.pem", tmp_path / "cp.key")
        await assert_refused_by_tls(node.address, context)


# --- what the control plane refuses --------------------------------------------------------------


async def test_the_control_plane_refuses_an_agent_that_is_not_the_node_it_meant(
    control_plane: ControlPlane, node: AgentProcess
) -> None:
    async with await control_plane.client(node, node_id="node_someoneelse") as agent:
        with pytest.raises(AgentCallError) as refused:
            await agent.replicas()
    assert (refused.value.node, refused.value.step) == ("node_someoneelse", "tls")
    assert refused.value.reason == (
        "the agent was refused: expected dockyard://node/node_someoneelse, "
        f"but the certificate presented is for dockyard://node/{node.node_id}"
    )


async def test_a_removed_node_is_refused_by_the_control_plane(control_plane: ControlPlane) -> None:
    with control_plane.agent("127.0.0.12") as removed:
        async with await control_plane.client(removed) as agent:
            assert await agent.replicas(environment_id="env-nothing-here") == []

        with control_plane.api.admin() as http:
            assert http.delete(f"/v1/nodes/{removed.node_id}").status_code == 200
        serial = pki.load_certificate((removed.state_dir / "node.pem").read_bytes()).serial_number
        assert serial in await control_plane.revoked_serials()

        async with await control_plane.client(removed) as agent:
            with pytest.raises(AgentCallError) as refused:
                await agent.replicas()
    assert refused.value.step == "tls"
    assert refused.value.reason == (
        f"the agent was refused: certificate {pki.serial_hex(serial)} of "
        f"dockyard://node/{removed.node_id} has been revoked"
    )


# --- the agent's identity across restarts --------------------------------------------------------


async def test_a_restarted_agent_keeps_its_identity_without_a_token(control_plane: ControlPlane) -> None:
    with control_plane.agent("127.0.0.13") as first:
        node_id = first.node_id
        certificate = (first.state_dir / "node.pem").read_bytes()
    restarted = AgentProcess(control_plane.api, first.host, first.state_dir, join_token=None)
    restarted.port = first.port
    with restarted:
        assert restarted.node_id == node_id
        assert (restarted.state_dir / "node.pem").read_bytes() == certificate
        async with await control_plane.client(restarted) as agent:
            assert await agent.replicas(environment_id="env-nothing-here") == []
    with control_plane.api.admin() as http:
        names = [n["name"] for n in http.get("/v1/nodes").json()]
    assert names.count("node-127-0-0-13") == 1


def test_an_agent_with_a_used_token_says_so_and_stops(control_plane: ControlPlane, tmp_path: Path) -> None:
    token = control_plane.api.join_token()
    with AgentProcess(control_plane.api, "127.0.0.14", tmp_path / "first", token) as first:
        node_id = first.node_id
    second = AgentProcess(control_plane.api, "127.0.0.15", tmp_path / "second", token)
    with pytest.raises(LoopbackServerError, match=f"join token already used by node {node_id} at "):
        second.start()
    assert not (tmp_path / "second" / "node.pem").exists()


def test_an_agent_neither_enrolled_nor_given_a_token_says_how_to_enroll(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """No local installation either (whose generated token a `dockyard up` agent would take)."""
    nowhere = {"XDG_STATE_HOME": str(tmp_path / "state")}
    agent = AgentProcess(control_plane.api, "127.0.0.16", tmp_path / "agent", None, environment=nowhere)
    with pytest.raises(LoopbackServerError, match="this agent is not enrolled"):
        agent.start()


def test_a_blocking_client_checks_the_node_too(control_plane: ControlPlane, node: AgentProcess) -> None:
    right = AgentTLS.from_pki_dir(control_plane.pki_dir, node.node_id).ssl_context()
    with httpx.Client(verify=right, timeout=10) as http:
        assert http.get(f"https://{node.address}/v1/replicas", params={"environment_id": "none"}).json() == []
    wrong = AgentTLS.from_pki_dir(control_plane.pki_dir, "node_someoneelse").ssl_context()
    with httpx.Client(verify=wrong, timeout=10) as http, pytest.raises(httpx.ConnectError) as refused:
        http.get(f"https://{node.address}/v1/replicas")
    assert "expected dockyard://node/node_someoneelse" in str(refused.value)


# --- heartbeats through the agent gateway ---------------------------------------------------------


async def test_an_enrolled_agent_sends_heartbeats_to_the_gateway(
    control_plane: ControlPlane, node: AgentProcess
) -> None:
    info = json.loads((node.state_dir / "node.json").read_text())
    assert (info["gateway_url"], info["heartbeat_interval_seconds"]) == (control_plane.api.gateway_url, 2.0)
    with control_plane.api.admin() as http:
        first = wait_for_heartbeat(http, node.node_id, after=None)
        later = wait_for_heartbeat(http, node.node_id, after=first["last_heartbeat_at"])
    assert later["usage"]["memory_mb"] > 0 and later["capacity"]["cpu_millis"] >= 1000
    assert later["state"] == "READY"


def wait_for_heartbeat(
    http: httpx.Client, node_id: str, after: str | None, timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = http.get(f"/v1/nodes/{node_id}").json()
        if node["last_heartbeat_at"] is not None and node["last_heartbeat_at"] != after:
            return node  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"no heartbeat from {node_id} (after {after}) within {timeout} s")


def heartbeat_body() -> dict[str, Any]:
    resources = {"cpu_millis": 2000, "memory_mb": 4096, "disk_mb": 10_000}
    return {
        "node": {"name": "impostor", "address": "127.0.0.19:7801", "docker_version": "test"},
        "capacity": resources,
        "usage": resources,
        "labels": {},
        "replicas": [],
    }


async def test_the_gateway_takes_heartbeats_from_current_nodes_only(
    control_plane: ControlPlane, other_node_credentials: tuple[Path, Path]
) -> None:
    """Only a current node's current certificate: a removed (revoked) node is refused; the gateway
    presents the control plane's identity, which the client checks."""
    gateway = control_plane.api.gateway_url
    node_id = pki.node_id_of(pki.load_certificate(other_node_credentials[0].read_bytes()))
    context = mtls.client_context(
        control_plane.pki_dir / "ca.pem", *other_node_credentials, pki.CONTROL_PLANE_IDENTITY
    )
    async with httpx.AsyncClient(verify=context, timeout=10) as http:
        accepted = await http.post(f"{gateway}/v1/heartbeats", json=heartbeat_body())
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"node_id": node_id, "state": "READY", "interval_seconds": 2.0}
        with control_plane.api.admin() as admin:
            assert admin.delete(f"/v1/nodes/{node_id}").status_code == 200
        refused = await http.post(f"{gateway}/v1/heartbeats", json=heartbeat_body())
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith(f"node {node_id} was removed: its certificate ")

    pretending = mtls.client_context(
        control_plane.pki_dir / "ca.pem", *other_node_credentials, pki.node_identity("node_other")
    )
    async with httpx.AsyncClient(verify=pretending, timeout=10) as http:
        with pytest.raises(httpx.ConnectError, match="expected dockyard://node/node_other"):
            await http.post(f"{gateway}/v1/heartbeats", json=heartbeat_body())


@pytest.mark.parametrize("newest", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
async def test_the_gateway_refuses_a_client_without_a_certificate(
    control_plane: ControlPlane, newest: ssl.TLSVersion
) -> None:
    await assert_refused_by_tls(
        control_plane.api.gateway_url.removeprefix("https://"), ca_only_context(control_plane, newest)
    )


def test_a_worker_without_the_control_plane_certificate_says_where_it_comes_from(tmp_path: Path) -> None:
    with pytest.raises(AgentCallError) as missing:
        AgentTLS.from_pki_dir(tmp_path, "node_a1").ssl_context()
    assert (missing.value.node, missing.value.step) == ("node_a1", "tls")
    assert "the API creates it in its state directory (pki/)" in missing.value.reason


# --- certificate renewal -------------------------------------------------------------------------


async def test_an_agent_renews_its_certificate_through_the_gateway(control_plane: ControlPlane) -> None:
    """With a renewal fraction of ~1 every heartbeat renews: the node's serial moves on, each
    certificate it leaves is revoked, and the control plane and the agent keep talking both ways; a
    restart picks up the newest pair."""
    token = control_plane.api.join_token()
    state = control_plane.root / "renewing"
    renewing = {"DOCKYARD_AGENT_CERTIFICATE_RENEW_FRACTION": "0.9999999"}
    with AgentProcess(control_plane.api, "127.0.0.17", state, token, environment=renewing) as agent:
        first = pki.load_certificate((state / "node.pem").read_bytes()).serial_number
        with control_plane.api.admin() as http:
            serials = {pki.serial_hex(first)}
            deadline = time.monotonic() + 30
            while len(serials) < 3:
                assert time.monotonic() < deadline, f"renewed only to {serials} in 30 s"
                serials.add(http.get(f"/v1/nodes/{agent.node_id}").json()["cert_serial"])
                await asyncio.sleep(0.2)
        assert first in await control_plane.revoked_serials()
        async with await control_plane.client(agent) as client:
            assert await client.replicas(environment_id="env-nothing-here") == []
    restarted = AgentProcess(control_plane.api, agent.host, state, join_token=None)
    restarted.port = agent.port
    with restarted:
        current = pki.load_certificate((state / "node.pem").read_bytes())
        assert pki.node_id_of(current) == agent.node_id
        assert current.serial_number not in await control_plane.revoked_serials()
        async with await control_plane.client(restarted) as client:
            assert await client.replicas(environment_id="env-nothing-here") == []
        assert not (state / "node.next.pem").exists()
