"""The agent's /metrics against the real Docker Engine: cAdvisor's series for a replica that burns CPU
(with its limits and Dockyard's labels), node_exporter's for the node, who may read them, and what a
scrape says when the engine is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.settings import AgentSettings
from core.contracts import ReplicaSpec
from tests.integration import test_agent as agent_tests
from tests.integration.test_agent import AUTH, agent_settings, ensured, running_agent
from tests.support.registry import Registry

pytestmark = pytest.mark.timeout(120)

# The agent tests' fixtures (the engine is the session's, started if need be): a real registry, the test
# app in it, a bearer-token agent on the engine.
registry = agent_tests.registry
app_image = agent_tests.app_image
agent = agent_tests.agent
environment_id = agent_tests.environment_id
make_spec = agent_tests.make_spec

METRICS_TOKEN = "metrics-test-token"
BURN = [
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM; (while :; do :; done) & busybox httpd -f -p $PORT -h /www & wait",
]

Samples = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(agent: httpx.AsyncClient, **headers: str) -> Samples:
    response = await agent.get("/metrics", headers=headers or None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def of_replica(samples: Samples, name: str, replica_id: str) -> float:
    (value,) = [value for labels, value in samples.get(name, []) if labels.get("replica") == replica_id]
    return value


async def test_a_replica_burning_cpu_is_exported_under_cadvisors_names_with_dockyards_labels(
    agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec], environment_id: str
) -> None:
    spec = make_spec(command=BURN, cpu_millis=250, memory_mb=64, project_id="prj_metrics")
    await ensured(agent, spec)
    await asyncio.sleep(2)

    first = await scrape(agent)
    await asyncio.sleep(2)
    second = await scrape(agent)

    cpu = "container_cpu_usage_seconds_total"
    (labels,) = [labels for labels, _ in second[cpu] if labels.get("replica") == spec.replica_id]
    assert labels == {
        "project": "prj_metrics",
        "environment": environment_id,
        "service": "web",
        "deployment": "dep-1",
        "replica": spec.replica_id,
        "node": "test-node",
    }
    burned = of_replica(second, cpu, spec.replica_id) - of_replica(first, cpu, spec.replica_id)
    assert 0.2 < burned < 2 * 0.25 * 2 + 0.3  # about a quarter CPU for the 2 s between the scrapes
    assert of_replica(second, "container_spec_cpu_quota", spec.replica_id) == 25_000
    assert of_replica(second, "container_spec_cpu_period", spec.replica_id) == 100_000
    assert of_replica(second, "container_spec_memory_limit_bytes", spec.replica_id) == 64 * 2**20
    assert 0 < of_replica(second, "container_memory_working_set_bytes", spec.replica_id) < 64 * 2**20
    assert of_replica(second, "container_network_receive_bytes_total", spec.replica_id) >= 0
    assert of_replica(second, "container_fs_usage_bytes", spec.replica_id) >= 0
    assert of_replica(second, "dockyard_replica_up", spec.replica_id) == 1
    assert of_replica(second, "dockyard_replica_restarts_total", spec.replica_id) == 0
    # The node, as node_exporter names it.
    modes = {labels["mode"] for labels, _ in second["node_cpu_seconds_total"]}
    assert {"user", "system", "idle"} <= modes
    assert all(labels["node"] == "test-node" for labels, _ in second["node_cpu_seconds_total"])
    (total,) = second["node_memory_MemTotal_bytes"]
    (available,) = second["node_memory_MemAvailable_bytes"]
    assert 0 < available[1] <= total[1]
    assert second["node_filesystem_size_bytes"][0][1] > 0 and "node_load1" in second
    assert second["dockyard_agent_engine_up"] == [({"node": "test-node"}, 1.0)]


async def test_the_metrics_token_reads_metrics_and_nothing_else(registry: Registry) -> None:
    settings = agent_settings(registry, metrics_token=METRICS_TOKEN)
    async with running_agent(settings, headers={}) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["step"] == "authenticate"
        assert "node_load1" in await scrape(http, Authorization=f"Bearer {METRICS_TOKEN}")
        assert "node_load1" in await scrape(http, **AUTH)  # the agent's own token too
        refused = await http.get("/v1/replicas", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert refused.status_code == 401


async def test_with_the_engine_gone_a_scrape_answers_the_node_and_says_so(registry: Registry) -> None:
    settings: AgentSettings = agent_settings(registry, docker_host="unix:///nonexistent/docker.sock")
    async with running_agent(settings) as http:
        samples = await scrape(http)

    assert samples["dockyard_agent_engine_up"] == [({"node": "test-node"}, 0.0)]
    assert "node_cpu_seconds_total" in samples and "container_cpu_usage_seconds_total" not in samples
