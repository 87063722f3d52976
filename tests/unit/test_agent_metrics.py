"""agent/metrics.py, the pure part: Docker's stats read as cAdvisor reads the cgroup, /proc/stat read as
node_exporter does, and the exposition of a snapshot."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent.metrics import (
    NodeSample,
    ReplicaSample,
    Snapshot,
    SnapshotCollector,
    _cpu_seconds,
    replica_sample_base,
    with_stats,
)

ATTRS = {
    "Id": "c1",
    "State": {"Status": "running"},
    "RestartCount": 2,
    "HostConfig": {"NanoCpus": 500_000_000, "Memory": 128 * 2**20},
}
LABELS = {
    "dockyard.project": "prj_1",
    "dockyard.environment": "env_1",
    "dockyard.service": "svc_1",
    "dockyard.deployment": "dep_1",
    "dockyard.replica": "dep_1-0",
}


@pytest.mark.parametrize(
    ("memory_stats", "working_set"),
    [
        ({"usage": 50_000, "stats": {"total_inactive_file": 20_000}}, 30_000),  # cgroup v1
        ({"usage": 50_000, "stats": {"inactive_file": 5_000}}, 45_000),  # cgroup v2
        ({"usage": 10, "stats": {"inactive_file": 50}}, 0),  # never negative
        ({}, None),  # a container that just stopped: no usage
    ],
    ids=["cgroup-v1", "cgroup-v2", "clamped", "none"],
)
def test_the_working_set_is_the_usage_less_the_inactive_page_cache(
    memory_stats: dict[str, object], working_set: int | None
) -> None:
    base = replica_sample_base(LABELS, ATTRS, "node-a")
    stats = {"cpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000}}, "memory_stats": memory_stats}

    sample = with_stats(base, stats, fs_usage=4096)

    assert sample.working_set == working_set
    assert sample.cpu_seconds == 1.5 and sample.fs_usage == 4096
    assert sample.received is None  # no network: host networking, or none at all


def test_the_inspect_output_gives_labels_limits_and_restarts() -> None:
    base = replica_sample_base(LABELS, ATTRS, "node-a")

    assert base.labels == ("prj_1", "env_1", "svc_1", "dep_1", "dep_1-0", "node-a")
    assert (base.up, base.restarts, base.cpu_quota, base.memory_limit) == (True, 2, 50_000, 128 * 2**20)


def test_network_bytes_sum_over_the_interfaces() -> None:
    base = replica_sample_base(LABELS, ATTRS, "node-a")
    stats = {"networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 1}, "eth1": {"rx_bytes": 5, "tx_bytes": 2}}}

    sample = with_stats(base, stats, None)

    assert (sample.received, sample.transmitted) == (15, 3)


def test_proc_stat_gives_seconds_per_cpu_and_mode() -> None:
    stat = "cpu  10 0 5 100 0 0 0 0 0 0\ncpu0 300 1 200 1000 2 0 3 0 0 0\nintr 1 2\n"

    seconds = dict(_cpu_seconds(stat))

    ticks = 100  # USER_HZ on Linux
    assert seconds[("0", "user")] == 300 / ticks and seconds[("0", "idle")] == 1000 / ticks
    assert seconds[("0", "softirq")] == 3 / ticks
    assert all(cpu == "0" for cpu, _ in seconds)  # the `cpu` total line is node_exporter's sum, not a CPU


def test_a_snapshot_is_written_under_cadvisors_and_node_exporters_names() -> None:
    replica = ReplicaSample(
        labels=("prj_1", "env_1", "svc_1", "dep_1", "dep_1-0", "node-a"),
        up=True,
        restarts=1,
        cpu_quota=0,
        memory_limit=0,
        cpu_seconds=2.5,
        working_set=1024,
    )
    node = NodeSample(node="node-a", cpu_seconds={("0", "idle"): 9.0}, memory_total=8, memory_available=4)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(Snapshot(replicas=[replica], node=node)))

    text = generate_latest(registry).decode()

    labels = 'environment="env_1",node="node-a",project="prj_1",replica="dep_1-0",service="svc_1"'
    assert f'container_cpu_usage_seconds_total{{deployment="dep_1",{labels}}} 2.5' in text
    assert f'container_memory_working_set_bytes{{deployment="dep_1",{labels}}} 1024.0' in text
    assert "container_spec_cpu_quota{" not in text  # unlimited: no quota series, as cAdvisor does
    assert 'node_cpu_seconds_total{cpu="0",mode="idle",node="node-a"} 9.0' in text
    assert 'dockyard_agent_engine_up{node="node-a"} 1.0' in text
