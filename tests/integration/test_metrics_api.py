"""The metrics API over a real Prometheus scraping a real agent (`dockyard agent`, bearer mode, read with
its metrics token) that runs a replica burning a quarter of a CPU: the CPU and memory a service's replicas
use come back summed and per replica; a node's; and Prometheus down or a bad range answers with the
reason. Traefik's request series are proven end to end (tests/e2e/test_metrics.py)."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.autoscaling import AutoscalingActivities, ObserveRequest
from core.contracts import HealthCheck, ReplicaSpec
from core.db import Database
from core.models import Deployment, Node, Replica, new_id, utcnow
from domain.temporal import TemporalConnection
from tests.integration import test_agent as agent_tests
from tests.support import DOCKER_HOST
from tests.support.api import api_settings, running_api
from tests.support.components import REPO_ROOT
from tests.support.process import LoopbackServer, free_port
from tests.support.prometheus import PrometheusServer, Target
from tests.support.registry import PushedImage, Registry

pytestmark = pytest.mark.timeout(180)

AGENT_TOKEN = "metrics-agent-token"
METRICS_TOKEN = "metrics-scrape-token"
NODE = "metrics-node"
BURN = "trap 'exit 0' TERM; (while :; do :; done) & busybox httpd -f -p $PORT -h /www & wait"

registry = agent_tests.registry
app_image = agent_tests.app_image


class AgentProcess(LoopbackServer):
    name = "dockyard agent"
    slug = "agent"

    def __init__(self, registry: Registry) -> None:
        super().__init__(start_timeout_seconds=60)
        self.registry = registry
        self.port = free_port()
        self.state_dir = Path()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, root: Path) -> list[str]:
        self.state_dir = root / "state"
        return [sys.executable, "-m", "cli", "agent"]

    def environment(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(REPO_ROOT),
            "DOCKYARD_AGENT_LISTEN_PORT": str(self.port),
            "DOCKYARD_AGENT_NODE_NAME": NODE,
            "DOCKYARD_AGENT_TOKEN": AGENT_TOKEN,
            "DOCKYARD_AGENT_METRICS_TOKEN": METRICS_TOKEN,
            "DOCKYARD_AGENT_DOCKER_HOST": DOCKER_HOST,
            "DOCKYARD_AGENT_REGISTRY_HOST": self.registry.host,
            "DOCKYARD_AGENT_REGISTRY_USERNAME": self.registry.username,
            "DOCKYARD_AGENT_REGISTRY_PASSWORD": self.registry.password,
            "DOCKYARD_AGENT_STATE_DIR": str(self.state_dir),
        }

    def ready(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0


@pytest.fixture(scope="module")
def agent(registry: Registry) -> Iterator[AgentProcess]:
    with AgentProcess(registry) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(agent: AgentProcess) -> Iterator[PrometheusServer]:
    with PrometheusServer(
        [Target(f"127.0.0.1:{agent.port}", token=METRICS_TOKEN)], scrape_interval=1
    ) as running:
        yield running


@pytest.fixture
async def api(
    database: Database, tmp_path: Path, prometheus: PrometheusServer
) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}").model_copy(
        update={"prometheus_url": prometheus.url, "prometheus_scrape_interval_seconds": 1.0}
    )
    async with running_api(settings) as client:
        yield client


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
async def burning(
    api: httpx.AsyncClient, agent: AgentProcess, app_image: PushedImage, docker_client: Any
) -> AsyncIterator[tuple[dict[str, Any], str]]:
    """A service whose one replica (on the agent) burns 250 millicores; its replica id."""
    project = await ok(await api.post("/v1/projects", json={"name": "metered"}), 201)
    service = await ok(
        await api.post(
            f"/v1/projects/{project['id']}/services", json={"name": "burner", "image": app_image.ref}
        ),
        201,
    )
    (environment,) = await ok(await api.get(f"/v1/projects/{project['id']}/environments"))
    spec = ReplicaSpec(
        replica_id=f"dep-{new_id('x')[2:]}-0".replace("_", "-"),
        service_id=service["id"],
        environment_id=environment["id"],
        deployment_id="dep_metrics",
        project_id=project["id"],
        image=app_image.ref,
        command=["/bin/sh", "-c", BURN],
        health_check=HealthCheck(path="/healthz", timeout_seconds=2),
        cpu_millis=250,
        memory_mb=64,
    )
    async with httpx.AsyncClient(
        base_url=agent.url, headers={"Authorization": f"Bearer {AGENT_TOKEN}"}
    ) as http:
        ensured = await http.put(
            f"/v1/replicas/{spec.replica_id}", json=spec.model_dump(mode="json"), timeout=60
        )
        assert ensured.status_code == 200, ensured.text
        try:
            yield service, spec.replica_id
        finally:
            await http.delete(f"/v1/replicas/{spec.replica_id}", params={"grace_seconds": 0}, timeout=30)


async def until(
    api: httpx.AsyncClient, path: str, params: dict[str, str], check: Any, seconds: float = 30
) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        answer = await ok(await api.get(path, params=params))
        if check(answer):
            return answer
        assert time.monotonic() < deadline, f"{path} {params} never satisfied the check: {answer}"
        await asyncio.sleep(1)


def last(points: list[list[float]]) -> float:
    return points[-1][1] if points else 0.0


async def test_a_services_cpu_and_memory_come_back_summed_and_per_replica(
    api: httpx.AsyncClient, burning: tuple[dict[str, Any], str]
) -> None:
    service, replica_id = burning
    path = f"/v1/services/{service['id']}/metrics"

    cpu = await until(api, path, {"metric": "cpu", "range": "2m"}, lambda a: last(a["total"]) > 0.15)
    memory = await ok(await api.get(path, params={"metric": "memory", "range": "2m", "step": "5s"}))

    assert cpu["unit"] == "cores" and 0.15 < last(cpu["total"]) < 0.35  # its quarter of a CPU
    assert [(s["name"], s["replica"]) for s in cpu["series"]] == [("replica", replica_id)]
    assert memory["unit"] == "bytes" and memory["step_seconds"] == 5
    assert 0 < last(memory["total"]) < 64 * 2**20
    assert memory["series"][0]["replica"] == replica_id
    staging = await api.get(path, params={"metric": "cpu", "environment": "nope"})
    assert staging.status_code == 404


async def test_a_nodes_metrics_come_back_by_its_name(api: httpx.AsyncClient, database: Database) -> None:
    node_id = new_id("node")
    async with database.transaction() as session:
        session.add(
            Node(
                id=node_id,
                name=NODE,
                address="127.0.0.1:1",
                certificate="-",
                cert_serial=node_id,
                cert_not_after=utcnow(),
            )
        )
    path = f"/v1/nodes/{node_id}/metrics"

    load = await until(api, path, {"metric": "memory", "range": "1m"}, lambda a: last(a["total"]) > 0)

    assert load["unit"] == "bytes" and load["series"] == []


async def test_bad_ranges_name_the_field(api: httpx.AsyncClient, burning: tuple[dict[str, Any], str]) -> None:
    service, _ = burning
    path = f"/v1/services/{service['id']}/metrics"

    for params, field in (
        ({"metric": "cpu", "range": "forever"}, "range"),
        ({"metric": "cpu", "step": "1x"}, "step"),
    ):
        response = await api.get(path, params=params)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    too_long = await api.get(path, params={"metric": "cpu", "range": "60d"})
    assert too_long.status_code == 422 and "at most 31d" in too_long.text
    unknown = await api.get(path, params={"metric": "temperature"})
    assert unknown.status_code == 422


async def test_the_autoscaler_observes_each_replicas_share_of_what_it_reserves(
    api: httpx.AsyncClient,
    database: Database,
    prometheus: PrometheusServer,
    burning: tuple[dict[str, Any], str],
) -> None:
    service, replica_id = burning
    (environment,) = await ok(await api.get(f"/v1/projects/{service['project_id']}/environments"))
    async with database.transaction() as session:
        session.add(
            Deployment(
                id="dep_metrics",
                service_id=service["id"],
                environment_id=environment["id"],
                status="ACTIVE",
                workflow_id="deploy/x/y/dep_metrics",
            )
        )
        await session.flush()
        session.add(Replica(id=replica_id, deployment_id="dep_metrics", node=NODE, state="running"))
        session.add(Replica(id="dep-metrics-9", deployment_id="dep_metrics", node=NODE, state="removed"))
    settings = api_settings(database, Path("/nonexistent"), "127.0.0.1:1").model_copy(
        update={"prometheus_url": prometheus.url}
    )
    activities = AutoscalingActivities(database, settings, TemporalConnection(settings))
    request = ObserveRequest(
        service_id=service["id"],
        environment_id=environment["id"],
        deployment_id="dep_metrics",
        replicas=1,
        cpu_millis=250,
        memory_mb=64,
        window_seconds=10,
    )

    deadline = time.monotonic() + 30
    while True:
        seen = await ActivityEnvironment().run(activities.observe, request)
        if seen.replicas and (seen.replicas[0].cpu or 0) > 0.6:
            break
        assert time.monotonic() < deadline, f"no CPU share observed: {seen}"
        await asyncio.sleep(1)

    (replica,) = seen.replicas  # the removed one is left out
    assert replica.replica == replica_id and replica.ready
    assert 0.6 < (replica.cpu or 0) < 1.4  # all of the quarter CPU it reserves
    assert 0 < (replica.memory or 0) < 1
    assert seen.current == 1 and seen.requests_per_second is None  # no Traefik here


async def test_prometheus_down_is_a_503_with_the_reason(database: Database, tmp_path: Path) -> None:
    closed = free_port()
    settings = api_settings(database, tmp_path, f"127.0.0.1:{free_port()}").model_copy(
        update={"prometheus_url": f"http://127.0.0.1:{closed}"}
    )
    async with running_api(settings) as api:
        project = await ok(await api.post("/v1/projects", json={"name": "dark"}), 201)
        service = await ok(
            await api.post(
                f"/v1/projects/{project['id']}/services", json={"name": "web", "image": "127.0.0.1:5000/a:1"}
            ),
            201,
        )
        response = await api.get(f"/v1/services/{service['id']}/metrics", params={"metric": "requests"})

    assert response.status_code == 503
    assert response.json()["detail"] == (
        f"Prometheus at http://127.0.0.1:{closed} did not answer: connection refused or unreachable"
    )
