"""Invariants of schedule on arbitrary clusters: never over-commit a node, account for every replica exactly
once, only READY nodes that satisfy the constraints, spread as even as capacity allows, the same answer for
the same input, and every decision equal to the obvious full scan's (reference.py)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.scheduler import (
    ExistingReplica,
    NodeInfo,
    NodeState,
    ReplicaRequest,
    Resources,
    Schedule,
    Strategy,
    parse_constraint,
    schedule,
)
from tests.unit.scheduler.reference import reference_schedule
from tests.unit.scheduler.support import node, placed_on, replica

SERVICES = ["web", "api", "worker"]
CONSTRAINTS = ["zone=eu", "zone!=us", "disk=ssd", "disk!=hdd"]
SIZES = [0, 100, 250, 500, 1_000, 3_000]


@st.composite
def nodes(draw: st.DrawFn) -> list[NodeInfo]:
    count = draw(st.integers(min_value=0, max_value=10))
    result = []
    for number in draw(st.permutations(range(count))):
        cpu = draw(st.sampled_from([0, 1_000, 2_000, 4_000]))
        memory = draw(st.sampled_from([0, 1_024, 4_096]))
        labels = {
            key: value
            for key, value in [("zone", draw(st.sampled_from(["eu", "us", ""]))),
                               ("disk", draw(st.sampled_from(["ssd", "hdd", ""])))]
            if value
        }  # fmt: skip
        result.append(
            NodeInfo(
                node_id=f"n{number}",
                state=draw(st.sampled_from(NodeState)),
                capacity=Resources(cpu_millis=cpu, memory_mb=memory),
                allocated=Resources(
                    cpu_millis=draw(st.integers(min_value=0, max_value=cpu)),
                    memory_mb=draw(st.integers(min_value=0, max_value=memory)),
                ),
                labels=labels,
            )
        )
    return result


@st.composite
def requests(draw: st.DrawFn) -> list[ReplicaRequest]:
    count = draw(st.integers(min_value=0, max_value=25))
    return [
        ReplicaRequest(
            replica_id=f"r{number}",
            service_id=draw(st.sampled_from(SERVICES)),
            resources=Resources(
                cpu_millis=draw(st.sampled_from(SIZES)), memory_mb=draw(st.sampled_from(SIZES))
            ),
            constraints=draw(st.lists(st.sampled_from(CONSTRAINTS), max_size=2)),
            spread_key=draw(st.sampled_from([None, None, "shared"])),
        )
        for number in range(count)
    ]


def existing_on(cluster: list[NodeInfo]) -> st.SearchStrategy[list[ExistingReplica]]:
    node_ids = st.sampled_from([n.node_id for n in cluster] + ["gone"])
    keys = st.sampled_from([*SERVICES, "shared"])
    return st.lists(st.builds(ExistingReplica, node_id=node_ids, spread_key=keys), max_size=8)


strategies = st.sampled_from(Strategy)


@settings(deadline=None)
@given(nodes(), requests(), strategies, st.data())
def test_every_decision_matches_the_full_scan(
    cluster: list[NodeInfo], asked: list[ReplicaRequest], strategy: Strategy, data: st.DataObject
) -> None:
    existing = data.draw(existing_on(cluster))

    assert schedule(cluster, asked, strategy, existing) == reference_schedule(
        cluster, asked, strategy, existing
    )


@settings(deadline=None)
@given(nodes(), requests(), strategies)
def test_no_node_is_over_committed(
    cluster: list[NodeInfo], asked: list[ReplicaRequest], strategy: Strategy
) -> None:
    result = schedule(cluster, asked, strategy)

    by_id = {r.replica_id: r.resources for r in asked}
    for n in cluster:
        landed = [by_id[p.replica_id] for p in result.placements if p.node_id == n.node_id]
        assert n.allocated.cpu_millis + sum(r.cpu_millis for r in landed) <= n.capacity.cpu_millis
        assert n.allocated.memory_mb + sum(r.memory_mb for r in landed) <= n.capacity.memory_mb


@settings(deadline=None)
@given(nodes(), requests(), strategies)
def test_every_replica_is_placed_once_or_unplaced_with_a_reason_per_node(
    cluster: list[NodeInfo], asked: list[ReplicaRequest], strategy: Strategy
) -> None:
    result = schedule(cluster, asked, strategy)

    placed = [p.replica_id for p in result.placements]
    unplaced = [u.replica_id for u in result.unplaced]
    assert sorted(placed + unplaced) == sorted(r.replica_id for r in asked)
    assert len(set(placed + unplaced)) == len(asked)
    order = [r.replica_id for r in asked]
    assert placed == [i for i in order if i in set(placed)]
    for u in result.unplaced:
        assert set(u.reasons) == {n.node_id for n in cluster}
        assert all(u.reasons.values())


@settings(deadline=None)
@given(nodes(), requests(), strategies)
def test_only_ready_nodes_that_satisfy_the_constraints(
    cluster: list[NodeInfo], asked: list[ReplicaRequest], strategy: Strategy
) -> None:
    result = schedule(cluster, asked, strategy)

    nodes_by_id = {n.node_id: n for n in cluster}
    requests_by_id = {r.replica_id: r for r in asked}
    for p in result.placements:
        target = nodes_by_id[p.node_id]
        assert target.state is NodeState.READY
        for text in requests_by_id[p.replica_id].constraints:
            assert parse_constraint(text).violation(target.labels) is None


@settings(deadline=None)
@given(
    st.integers(min_value=1, max_value=8),
    st.lists(st.sampled_from(["web", "api", "worker", "db"]), max_size=60),
    st.lists(st.sampled_from([100, 250, 500]), min_size=1),
)
def test_spread_is_even_on_identical_nodes_with_room(
    node_count: int, services: list[str], sizes: list[int]
) -> None:
    cluster = [node(f"n{number}", cpu=100_000, memory=100_000) for number in range(node_count)]
    asked = [
        replica(f"r{number}", service, cpu=sizes[number % len(sizes)], memory=sizes[number % len(sizes)])
        for number, service in enumerate(services)
    ]

    result = schedule(cluster, asked)

    assert result.unplaced == []
    service_of = {r.replica_id: r.service_id for r in asked}
    for service in set(services):
        per_node = Counter(p.node_id for p in result.placements if service_of[p.replica_id] == service)
        counts = [per_node[n.node_id] for n in cluster]
        assert max(counts) - min(counts) <= 1, (service, counts)


@settings(deadline=None)
@given(nodes(), requests(), strategies, st.randoms(use_true_random=False))
def test_same_input_same_schedule_whatever_the_node_order(
    cluster: list[NodeInfo], asked: list[ReplicaRequest], strategy: Strategy, rng: random.Random
) -> None:
    first = schedule(cluster, asked, strategy)
    shuffled = list(cluster)
    rng.shuffle(shuffled)

    assert schedule(cluster, asked, strategy) == first
    assert _canonical(schedule(shuffled, asked, strategy)) == _canonical(first)


def _canonical(result: Schedule) -> tuple[dict[str, str], list[tuple[str, list[tuple[str, str]]]]]:
    return placed_on(result), [(u.replica_id, sorted(u.reasons.items())) for u in result.unplaced]


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_crowded_cluster_matches_the_full_scan(strategy: Strategy, seed: int) -> None:
    """Hundreds of nodes filling up: pools re-sorted, full nodes dropped, reasons reused, as in production."""
    rng = random.Random(seed)
    cluster = [
        node(f"n{number:03d}", rng.choice(list(NodeState)) if number % 10 == 0 else NodeState.READY,
             cpu=rng.choice([2_000, 4_000, 8_000]), memory=rng.choice([2_048, 8_192]),
             used_cpu=rng.choice([0, 500, 1_000]), zone=rng.choice(["eu", "us", "ap"]),
             disk=rng.choice(["ssd", "hdd"]))
        for number in range(150)
    ]  # fmt: skip
    asked = [
        replica(f"r{number}", f"svc{number // rng.randint(1, 30)}",
                cpu=rng.choice(SIZES), memory=rng.choice(SIZES),
                constraints=tuple(rng.sample(CONSTRAINTS, rng.choice([0, 0, 0, 1, 2]))),
                spread_key=rng.choice([None, None, None, "shared"]))
        for number in range(1_500)
    ]  # fmt: skip
    existing = [ExistingReplica(node_id=rng.choice(cluster).node_id, spread_key=f"svc{n}") for n in range(50)]

    result = schedule(cluster, asked, strategy, existing)

    assert result.unplaced, "the cluster should end up full"
    assert result == reference_schedule(cluster, asked, strategy, existing)
