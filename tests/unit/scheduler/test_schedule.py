"""schedule: which node each rule picks, table by table; every expectation is the whole placement map."""

from __future__ import annotations

import pytest

from core.scheduler import ExistingReplica, NodeInfo, NodeState, ReplicaRequest, Strategy, schedule
from tests.unit.scheduler.support import node, placed_on, replica, replicas

SPREAD, BINPACK = Strategy.SPREAD, Strategy.BINPACK
CORDONED, DRAINING, DOWN = NodeState.CORDONED, NodeState.DRAINING, NodeState.DOWN


def running(node_id: str, spread_key: str) -> ExistingReplica:
    return ExistingReplica(node_id=node_id, spread_key=spread_key)


@pytest.mark.parametrize(
    ("nodes", "requests", "strategy", "expected"),
    [
        pytest.param([node("a")], [replica("r")], SPREAD, {"r": "a"}, id="one-node"),
        pytest.param([node("a", CORDONED), node("b", DRAINING), node("c", DOWN), node("d")],
                     replicas("web", 2), SPREAD, {"web-0": "d", "web-1": "d"}, id="only-ready-nodes"),
        # spread
        pytest.param([node("a"), node("b"), node("c")], replicas("web", 4), SPREAD,
                     {"web-0": "a", "web-1": "b", "web-2": "c", "web-3": "a"}, id="spread-round-robin"),
        pytest.param([node("b"), node("c"), node("a")], replicas("web", 2), SPREAD,
                     {"web-0": "a", "web-1": "b"}, id="spread-tie-smallest-node-id-whatever-the-input-order"),
        pytest.param([node("a", used_cpu=1_000), node("b", used_cpu=2_000), node("c", used_cpu=3_000)],
                     replicas("web", 1), SPREAD, {"web-0": "a"}, id="spread-least-allocated-cpu"),
        pytest.param([node("a", used_memory=4_096), node("b", used_cpu=1_000)], replicas("web", 1), SPREAD,
                     {"web-0": "b"}, id="spread-least-allocated-counts-memory-too"),
        pytest.param([node("a", cpu=8_000, memory=16_384, used_cpu=2_000, used_memory=4_096),
                      node("b", used_cpu=2_000, used_memory=4_096)],
                     replicas("web", 1), SPREAD, {"web-0": "a"}, id="spread-fraction-not-absolute-use"),
        pytest.param([node("a", cpu=0), node("b", used_cpu=1_500, used_memory=3_000)],
                     [replica("r", cpu=0)], SPREAD, {"r": "b"}, id="no-capacity-in-a-dimension-is-full"),
        pytest.param([node("a"), node("b", used_cpu=3_500)],
                     [replica("web-0"), replica("web-1"), replica("api-0", "api")], SPREAD,
                     {"web-0": "a", "web-1": "b", "api-0": "a"}, id="spread-fewest-of-the-key-first"),
        pytest.param([node("a"), node("b")],
                     [replica("web-0"), replica("worker-0", "worker"), replica("api-0", "api")], SPREAD,
                     {"web-0": "a", "worker-0": "b", "api-0": "a"}, id="spread-other-services-are-only-load"),
        pytest.param([node("a"), node("b")],
                     [replica("web-0", spread_key="tenant-1"), replica("api-0", "api", cpu=100, memory=100,
                                                                       spread_key="tenant-1")],
                     SPREAD, {"web-0": "a", "api-0": "b"}, id="spread-key-shared-across-services"),
        pytest.param([node("a"), node("b")],
                     [replica("web-0", cpu=1_000, memory=1_024), replica("web-1", spread_key="canary")],
                     SPREAD, {"web-0": "a", "web-1": "b"}, id="spread-key-replaces-the-service"),
        pytest.param([node("a", cpu=1_000), node("b")],
                     replicas("web", 3, cpu=600), SPREAD, {"web-0": "a", "web-1": "b", "web-2": "b"},
                     id="spread-falls-back-to-more-of-the-key-when-the-others-are-full"),
        # binpack
        pytest.param([node("a", used_cpu=1_000), node("b", used_cpu=2_000)], replicas("web", 1), BINPACK,
                     {"web-0": "b"}, id="binpack-most-allocated"),
        pytest.param([node("a", used_cpu=1_000), node("b", used_cpu=3_800)], replicas("web", 1), BINPACK,
                     {"web-0": "a"}, id="binpack-most-allocated-that-fits"),
        pytest.param([node("b"), node("a"), node("c")], replicas("web", 3, cpu=1_500), BINPACK,
                     {"web-0": "a", "web-1": "a", "web-2": "b"}, id="binpack-fills-a-node-before-the-next"),
        pytest.param([node("a"), node("b")], [replica("big", cpu=3_000), replica("small", cpu=1_000)],
                     BINPACK, {"big": "a", "small": "a"}, id="binpack-exact-fit"),
        pytest.param([node("a"), node("b")], [replica("big", cpu=3_000), replica("mid", cpu=2_000),
                                              replica("small", cpu=1_000)], BINPACK,
                     {"big": "a", "mid": "b", "small": "a"}, id="binpack-returns-to-the-fuller-node"),
        # constraints
        pytest.param([node("a", zone="us"), node("b", zone="eu"), node("c")],
                     [replica("r", constraints=("zone=eu",))], SPREAD, {"r": "b"}, id="constraint-equal"),
        pytest.param([node("a", zone="us"), node("b", zone="eu", used_cpu=1_000), node("c", used_cpu=2_000)],
                     replicas("web", 2, constraints=("zone!=us",)), SPREAD, {"web-0": "b", "web-1": "c"},
                     id="constraint-not-equal-matches-nodes-without-the-label"),
        pytest.param([node("a", zone="eu", disk="hdd"), node("b", zone="eu", disk="ssd"),
                      node("c", disk="ssd")],
                     [replica("r", constraints=("zone=eu", "disk=ssd"))], SPREAD, {"r": "b"},
                     id="constraints-all-must-hold"),
        pytest.param([node("a", zone="eu"), node("b", zone="eu")],
                     [replica("r", constraints=("zone=eu", "zone=eu"))], SPREAD, {"r": "a"},
                     id="constraint-repeated"),
    ],
)  # fmt: skip
def test_placement(
    nodes: list[NodeInfo], requests: list[ReplicaRequest], strategy: Strategy, expected: dict[str, str]
) -> None:
    result = schedule(nodes, requests, strategy)

    assert result.unplaced == []
    assert placed_on(result) == expected
    assert [placement.replica_id for placement in result.placements] == [r.replica_id for r in requests]


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        pytest.param([], {"web-0": "a", "web-1": "b"}, id="none"),
        pytest.param([running("a", "web")], {"web-0": "b", "web-1": "c"},
                     id="new-replicas-avoid-the-running-one"),
        pytest.param([running("a", "web"), running("b", "web"), running("b", "web")],
                     {"web-0": "c", "web-1": "a"}, id="replacement-after-node-loss-fills-the-gaps"),
        pytest.param([running("a", "api")], {"web-0": "a", "web-1": "b"},
                     id="other-keys-do-not-count"),
        pytest.param([running("gone", "web")], {"web-0": "a", "web-1": "b"},
                     id="unknown-node-ignored"),
        pytest.param([running("d", "web")], {"web-0": "a", "web-1": "b"},
                     id="on-a-down-node"),
    ],
)  # fmt: skip
def test_existing_replicas_count_for_spread(
    existing: list[ExistingReplica], expected: dict[str, str]
) -> None:
    nodes = [node("a"), node("b"), node("c"), node("d", DOWN)]

    result = schedule(nodes, replicas("web", 2), existing=existing)

    assert placed_on(result) == expected


def test_existing_replicas_do_not_change_binpack() -> None:
    existing = [running("a", "web")]

    assert placed_on(schedule([node("a"), node("b")], replicas("web", 2), BINPACK, existing)) == {
        "web-0": "a",
        "web-1": "a",
    }


def test_a_replica_that_fits_nowhere_leaves_the_rest_placed_in_order() -> None:
    result = schedule([node("a", cpu=1_000)], [replica("r0", cpu=600), replica("r1", cpu=600), replica("r2")])

    assert placed_on(result) == {"r0": "a"}
    assert [unplaced.replica_id for unplaced in result.unplaced] == ["r1", "r2"]


def test_allocations_accumulate_and_never_over_commit() -> None:
    result = schedule([node("a", cpu=2_000, memory=2_048)], replicas("web", 5, cpu=500, memory=512))

    assert placed_on(result) == {f"web-{number}": "a" for number in range(4)}
    assert [unplaced.replica_id for unplaced in result.unplaced] == ["web-4"]


def test_no_nodes_or_no_replicas() -> None:
    assert schedule([node("a")], []).placements == []
    (unplaced,) = schedule([], [replica("r")]).unplaced
    assert (unplaced.replica_id, unplaced.reasons) == ("r", {})


@pytest.mark.parametrize(
    ("nodes", "requests", "message"),
    [
        pytest.param([node("a"), node("b"), node("a")], [],
                     "node ids must be unique; repeated: a", id="nodes"),
        pytest.param([node("a")], [replica("r"), replica("s"), replica("r")],
                     "replica ids must be unique; repeated: r", id="replicas"),
    ],
)  # fmt: skip
def test_ids_must_be_unique(nodes: list[NodeInfo], requests: list[ReplicaRequest], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schedule(nodes, requests)
