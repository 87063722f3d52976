"""Scheduler throughput: 10,000 replicas (500 services of 20, mixed sizes, some constrained, one service that
fits nowhere) on 1,000 nodes (mixed capacities and labels, some already busy, 20 not READY), with SPREAD and
with BINPACK, against baselines measured in the same run on the same input:
  first-fit   the least a scheduler can do: per replica, walk the nodes and take the first feasible one
              (no scoring, no reasons for the unplaced);
  full scan   the same rules as `schedule`, the obvious way: filter and score every node for every replica
              (tests/unit/scheduler/reference.py); it must give the same schedule, which is asserted.

For context: Nomad's "C2M" challenge (2020) scheduled 2,000,000 Docker containers on 6,100 hosts in
22 min 14 s, nearly 1,500 containers/s (hashicorp.com/c2m), as assigned to a node and then started on it;
this measures pure placement only.
Prints figures; asserts nothing about time. Run: pytest -m bench -s tests/bench/test_scheduler_bench.py.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

import pytest

from core.scheduler import (
    NodeInfo,
    NodeState,
    ReplicaRequest,
    Resources,
    Strategy,
    parse_constraint,
    schedule,
)
from tests.unit.scheduler.reference import reference_schedule

pytestmark = [pytest.mark.bench, pytest.mark.timeout(900)]

NODES = 1_000
SERVICES = 500
REPLICAS_PER_SERVICE = 20
ROUNDS = 5
FULL_SCAN_ROUNDS = 1  # some 15 s a round
NOMAD_C2M_PER_SECOND = 1_500
GOAL_SECONDS = 1.0

NODE_SIZES = [(8_000, 16_384), (16_000, 32_768), (32_000, 65_536)]
REPLICA_SIZES = [(250, 256), (500, 512), (1_000, 1_024), (2_000, 4_096)]
CONSTRAINT_SETS: list[list[str]] = [[]] * 6 + [
    ["zone=eu"],
    ["zone=us"],
    ["disk=ssd"],
    ["zone=ap", "gpu!=true"],
]
NOWHERE = ["zone=mars"]
ZONES = ["eu", "us", "ap"]

T = TypeVar("T")


def cluster(rng: random.Random) -> list[NodeInfo]:
    nodes = []
    for number in range(NODES):
        cpu, memory = rng.choice(NODE_SIZES)
        busy = rng.choice([0, 0, 0.1, 0.3])
        labels = {"zone": ZONES[number % 3], "disk": rng.choice(["ssd", "hdd"])}
        if number % 50 == 0:
            labels["gpu"] = "true"
        nodes.append(
            NodeInfo(
                node_id=f"node-{number:04d}",
                state=rng.choice(list(NodeState)[1:]) if number % 50 == 7 else NodeState.READY,
                capacity=Resources(cpu_millis=cpu, memory_mb=memory),
                allocated=Resources(cpu_millis=int(cpu * busy), memory_mb=int(memory * busy)),
                labels=labels,
            )
        )
    rng.shuffle(nodes)
    return nodes


def workload(rng: random.Random) -> list[ReplicaRequest]:
    replicas = []
    for service in range(SERVICES):
        cpu, memory = rng.choice(REPLICA_SIZES)
        constraints = NOWHERE if service == SERVICES // 2 else rng.choice(CONSTRAINT_SETS)
        replicas += [
            ReplicaRequest(
                replica_id=f"svc-{service:03d}-{replica:02d}",
                service_id=f"svc-{service:03d}",
                resources=Resources(cpu_millis=cpu, memory_mb=memory),
                constraints=constraints,
            )
            for replica in range(REPLICAS_PER_SERVICE)
        ]
    return replicas


def first_fit(nodes: Sequence[NodeInfo], replicas: Sequence[ReplicaRequest]) -> int:
    ready = [node for node in nodes if node.state is NodeState.READY]
    free = {node.node_id: [node.capacity.cpu_millis - node.allocated.cpu_millis,
                           node.capacity.memory_mb - node.allocated.memory_mb] for node in ready}  # fmt: skip
    placed = 0
    for replica in replicas:
        constraints = [parse_constraint(text) for text in replica.constraints]
        cpu, memory = replica.resources.cpu_millis, replica.resources.memory_mb
        for node in ready:
            room = free[node.node_id]
            if (
                cpu <= room[0]
                and memory <= room[1]
                and not any(c.violation(node.labels) for c in constraints)
            ):
                room[0] -= cpu
                room[1] -= memory
                placed += 1
                break
    return placed


def timed(rounds: int, run: Callable[[], T]) -> tuple[list[float], T]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return times, result


def report(name: str, times: list[float], placed: int) -> float:
    median = statistics.median(times)
    print(
        f"[bench] {name:<19} median of {len(times)}: {median * 1000:6.0f} ms"
        f" (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}),"
        f" {placed / median:>9,.0f} placements/s, {placed:,} placed"
    )
    return median


def test_scheduler_throughput() -> None:
    rng = random.Random(2024)
    nodes, replicas = cluster(rng), workload(rng)
    not_ready = sum(node.state is not NodeState.READY for node in nodes)
    print(f"\n[bench] {len(replicas):,} replicas on {NODES:,} nodes ({not_ready} not READY)")

    ff_times, ff_placed = timed(ROUNDS, lambda: first_fit(nodes, replicas))
    ff_median = report("first-fit baseline", ff_times, ff_placed)
    for strategy in Strategy:
        times, result = timed(ROUNDS, partial(schedule, nodes, replicas, strategy))
        median = report(f"schedule {strategy}", times, len(result.placements))
        scan_times, scanned = timed(FULL_SCAN_ROUNDS, partial(reference_schedule, nodes, replicas, strategy))
        scan_median = report(f"full scan {strategy}", scan_times, len(scanned.placements))
        assert scanned == result, "the full scan and schedule disagree"
        print(
            f"[bench]   {strategy}: {len(result.unplaced)} unplaced, each with a reason per node;"
            f" {scan_median / median:.0f}x the full scan's speed, {ff_median / median:.1f}x first-fit's;"
            f" goal {GOAL_SECONDS:.0f} s: {'met' if median < GOAL_SECONDS else 'missed'}"
        )
    print(f"[bench] context: Nomad C2M ~{NOMAD_C2M_PER_SECOND:,} containers/s (3 schedulers, 6,100 hosts)")
