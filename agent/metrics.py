"""The agent's Prometheus metrics (GET /metrics): for every replica it runs, what cAdvisor would export
for the container, under cAdvisor's names, and for its node, what node_exporter would, under
node_exporter's, so queries written for either work on Dockyard's series.

    replica  container_cpu_usage_seconds_total, container_memory_working_set_bytes,
             container_spec_memory_limit_bytes, container_spec_cpu_quota, container_spec_cpu_period,
             container_network_{receive,transmit}_bytes_total, container_fs_usage_bytes,
             dockyard_replica_up, dockyard_replica_restarts_total
             labels: project, environment, service, deployment, replica, node
    node     node_cpu_seconds_total{cpu,mode}, node_memory_{MemTotal,MemAvailable}_bytes,
             node_filesystem_{size,avail}_bytes{mountpoint}, node_load1, node_load5, node_load15
             label: node

One scrape lists the replicas, then asks Docker for each one's stats in one shot (no two-sample wait)
on a small thread pool. The writable layers' sizes (`docker ps --size`, slow on a busy engine) are read
at most once per SIZES_TTL_SECONDS. A scrape waits on the engine at most SCRAPE_BUDGET_SECONDS: a replica
whose stats are late is left out of that scrape (Prometheus marks its series stale) rather than holding
the agent, and only one scrape reads the engine at a time (a second caller gets the same answer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent import containers
from agent.runtime import DockerError, Runtime

SCRAPE_BUDGET_SECONDS = 5.0
SIZES_TTL_SECONDS = 60.0
STATS_WORKERS = 4
CPU_PERIOD_MICROSECONDS = 100_000  # Docker's CFS period: --cpus sets the quota against it
REPLICA_LABELS = ("project", "environment", "service", "deployment", "replica", "node")
PROC = Path("/proc")


@dataclass(frozen=True)
class ReplicaSample:
    labels: tuple[str, ...]  # in REPLICA_LABELS' order
    up: bool
    restarts: int
    cpu_quota: int  # microseconds per CPU_PERIOD_MICROSECONDS; 0: unlimited
    memory_limit: int  # bytes; 0: unlimited
    cpu_seconds: float | None = None
    working_set: int | None = None
    received: int | None = None
    transmitted: int | None = None
    fs_usage: int | None = None


@dataclass(frozen=True)
class NodeSample:
    node: str
    cpu_seconds: dict[tuple[str, str], float] = field(default_factory=dict)  # (cpu, mode) → seconds
    memory_total: int = 0
    memory_available: int = 0
    filesystem: dict[str, tuple[int, int]] = field(default_factory=dict)  # mountpoint → (size, avail)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Snapshot:
    replicas: list[ReplicaSample]
    node: NodeSample
    engine_error: str | None = None  # the engine did not answer: the node's series only


class Metrics:
    """Reads one Snapshot per scrape from the engine and the kernel and writes it as Prometheus text."""

    def __init__(self, runtime: Runtime, node_name: str, disk_path: str = "/") -> None:
        self.runtime = runtime
        self.node_name = node_name
        self.disk_path = disk_path
        self._pool = ThreadPoolExecutor(max_workers=STATS_WORKERS, thread_name_prefix="metrics")
        self._sizes: dict[str, int] = {}
        self._sizes_read_at = float("-inf")
        self._scrape: asyncio.Task[bytes] | None = None

    async def exposition(self) -> bytes:
        """The metrics as Prometheus' text format; concurrent callers share one read of the engine."""
        if self._scrape is None or self._scrape.done():
            self._scrape = asyncio.create_task(self._expose())
        return await asyncio.shield(self._scrape)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _expose(self) -> bytes:
        snapshot = await self.snapshot()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(snapshot))
        return generate_latest(registry)

    async def snapshot(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        node = await loop.run_in_executor(self._pool, node_sample, self.node_name, self.disk_path)
        deadline = loop.time() + SCRAPE_BUDGET_SECONDS
        try:
            listed = await asyncio.wait_for(
                loop.run_in_executor(self._pool, self.runtime.list, containers.managed_filters()),
                SCRAPE_BUDGET_SECONDS,
            )
        except (DockerError, TimeoutError) as exc:
            return Snapshot(replicas=[], node=node, engine_error=str(exc) or "the engine did not answer")
        await self._refresh_sizes(loop, deadline)
        reads = [loop.run_in_executor(self._pool, self._sample, attrs) for attrs in listed]
        done, late = (
            await asyncio.wait(reads, timeout=max(0.0, deadline - loop.time())) if reads else ((), ())
        )
        for future in late:
            future.cancel()
        samples = [future.result() for future in done if future.exception() is None]
        return Snapshot(replicas=sorted(samples, key=lambda s: s.labels), node=node)

    async def _refresh_sizes(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if time.monotonic() - self._sizes_read_at < SIZES_TTL_SECONDS:
            return
        try:
            self._sizes = await asyncio.wait_for(
                loop.run_in_executor(self._pool, self.runtime.sizes), max(0.0, deadline - loop.time())
            )
        except (DockerError, TimeoutError):
            return  # the last sizes stay, tried again next scrape
        self._sizes_read_at = time.monotonic()

    def _sample(self, attrs: dict[str, Any]) -> ReplicaSample:
        replica = replica_sample_base(containers.labels_of(attrs), attrs, self.node_name)
        if not replica.up:
            return replica
        return with_stats(replica, self.runtime.stats(attrs["Id"]), self._sizes.get(attrs["Id"]))


def replica_sample_base(labels: dict[str, str], attrs: dict[str, Any], node: str) -> ReplicaSample:
    """What the container's inspect output alone says of a replica."""
    host = attrs.get("HostConfig") or {}
    nano_cpus = int(host.get("NanoCpus") or 0)
    return ReplicaSample(
        labels=(
            labels.get(containers.LABEL_PROJECT, ""),
            labels.get(containers.LABEL_ENVIRONMENT, ""),
            labels.get(containers.LABEL_SERVICE, ""),
            labels.get(containers.LABEL_DEPLOYMENT, ""),
            labels.get(containers.LABEL_REPLICA, ""),
            node,
        ),
        up=(attrs.get("State") or {}).get("Status") == "running",
        restarts=int(attrs.get("RestartCount") or 0),
        cpu_quota=nano_cpus * CPU_PERIOD_MICROSECONDS // 1_000_000_000,
        memory_limit=int(host.get("Memory") or 0),
    )


def with_stats(replica: ReplicaSample, stats: dict[str, Any], fs_usage: int | None) -> ReplicaSample:
    """Docker's one-shot stats read as cAdvisor reads the cgroup: the working set is the usage less the
    inactive page cache (what the kernel would reclaim first), under cgroup v1 and v2 alike."""
    cpu = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
    memory = stats.get("memory_stats") or {}
    memory_stats = memory.get("stats") or {}
    inactive = memory_stats.get("total_inactive_file", memory_stats.get("inactive_file", 0))
    usage = memory.get("usage")
    networks = (stats.get("networks") or {}).values()
    return dataclasses.replace(
        replica,
        cpu_seconds=cpu["total_usage"] / 1e9 if "total_usage" in cpu else None,
        working_set=max(0, int(usage) - int(inactive)) if usage is not None else None,
        received=sum(int(n.get("rx_bytes", 0)) for n in networks) if networks else None,
        transmitted=sum(int(n.get("tx_bytes", 0)) for n in networks) if networks else None,
        fs_usage=fs_usage,
    )


def node_sample(node: str, disk_path: str = "/") -> NodeSample:
    """The node's CPU time per mode, memory, disk and load, from the kernel (as node_exporter reads it)."""
    statvfs = os.statvfs(disk_path)
    return NodeSample(
        node=node,
        cpu_seconds=dict(_cpu_seconds((PROC / "stat").read_text())),
        memory_total=_meminfo_bytes("MemTotal"),
        memory_available=_meminfo_bytes("MemAvailable"),
        filesystem={disk_path: (statvfs.f_blocks * statvfs.f_frsize, statvfs.f_bavail * statvfs.f_frsize)},
        load=os.getloadavg(),
    )


CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _cpu_seconds(stat: str) -> Iterator[tuple[tuple[str, str], float]]:
    ticks = os.sysconf("SC_CLK_TCK")
    for line in stat.splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        for mode, value in zip(CPU_MODES, values, strict=False):
            yield (name.removeprefix("cpu"), mode), int(value) / ticks


def _meminfo_bytes(name: str) -> int:
    for line in (PROC / "meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key == name:
            return int(rest.split()[0]) * 1024
    return 0


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        yield from _replica_families(self.snapshot.replicas)
        yield from _node_families(self.snapshot.node)
        engine = GaugeMetricFamily(
            "dockyard_agent_engine_up", "whether the Docker Engine answered this scrape", labels=["node"]
        )
        engine.add_metric([self.snapshot.node.node], 0.0 if self.snapshot.engine_error else 1.0)
        yield engine


def _replica_families(replicas: list[ReplicaSample]) -> Iterator[Metric]:
    def gauge(name: str, documentation: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=list(REPLICA_LABELS))

    def counter(name: str, documentation: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, documentation, labels=list(REPLICA_LABELS))

    up = gauge("dockyard_replica_up", "1 while the replica's container runs")
    restarts = counter("dockyard_replica_restarts", "times the engine restarted the replica's container")
    cpu = counter("container_cpu_usage_seconds", "cumulative CPU time consumed, in seconds")
    working_set = gauge("container_memory_working_set_bytes", "current working set, in bytes")
    memory_limit = gauge("container_spec_memory_limit_bytes", "memory limit of the container (0: none)")
    cpu_quota = gauge("container_spec_cpu_quota", "CPU quota of the container, microseconds per period")
    cpu_period = gauge("container_spec_cpu_period", "CPU period of the container, in microseconds")
    received = counter("container_network_receive_bytes", "cumulative count of bytes received")
    transmitted = counter("container_network_transmit_bytes", "cumulative count of bytes transmitted")
    fs_usage = gauge("container_fs_usage_bytes", "bytes the container's writable layer uses")
    for replica in replicas:
        labels = list(replica.labels)
        up.add_metric(labels, 1.0 if replica.up else 0.0)
        restarts.add_metric(labels, replica.restarts)
        memory_limit.add_metric(labels, replica.memory_limit)
        if replica.cpu_quota:
            cpu_quota.add_metric(labels, replica.cpu_quota)
            cpu_period.add_metric(labels, CPU_PERIOD_MICROSECONDS)
        for family, value in (
            (cpu, replica.cpu_seconds),
            (working_set, replica.working_set),
            (received, replica.received),
            (transmitted, replica.transmitted),
            (fs_usage, replica.fs_usage),
        ):
            if value is not None:
                family.add_metric(labels, value)
    yield from (up, restarts, cpu, working_set, memory_limit, cpu_quota, cpu_period, received, transmitted)
    yield fs_usage


def _node_families(node: NodeSample) -> Iterator[Metric]:
    cpu = CounterMetricFamily(
        "node_cpu_seconds", "seconds the CPUs spent in each mode", labels=["node", "cpu", "mode"]
    )
    for (number, mode), seconds in sorted(node.cpu_seconds.items()):
        cpu.add_metric([node.node, number, mode], seconds)
    yield cpu
    for name, documentation, value in (
        ("node_memory_MemTotal_bytes", "memory information field MemTotal_bytes", node.memory_total),
        (
            "node_memory_MemAvailable_bytes",
            "memory information field MemAvailable_bytes",
            node.memory_available,
        ),
        ("node_load1", "1m load average", node.load[0]),
        ("node_load5", "5m load average", node.load[1]),
        ("node_load15", "15m load average", node.load[2]),
    ):
        family = GaugeMetricFamily(name, documentation, labels=["node"])
        family.add_metric([node.node], value)
        yield family
    size = GaugeMetricFamily(
        "node_filesystem_size_bytes", "filesystem size in bytes", labels=["node", "mountpoint"]
    )
    avail = GaugeMetricFamily(
        "node_filesystem_avail_bytes",
        "filesystem space available to non-root users in bytes",
        labels=["node", "mountpoint"],
    )
    for mountpoint, (total, available) in node.filesystem.items():
        size.add_metric([node.node, mountpoint], total)
        avail.add_metric([node.node, mountpoint], available)
    yield size
    yield avail
