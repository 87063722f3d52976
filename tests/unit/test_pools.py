"""core/pools.py: what a node pool does next, table by table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.pools import (
    PoolNodeState,
    PoolNodeView,
    PoolPolicy,
    PoolView,
    check_sizes,
    decommission_backoff,
    plan_pool,
    provisioning_backoff,
)

NOW = datetime(2026, 12, 12, 12, 0, tzinfo=UTC)
POLICY = PoolPolicy(
    replace_down_after_seconds=300, retry_after_failure_seconds=10, retry_after_failure_max_seconds=60
)
S = PoolNodeState


def node(
    node_id: str,
    state: PoolNodeState = S.READY,
    age: float = 600,
    node_state: str | None = "READY",
    silent: float | None = None,
    finished_ago: float | None = None,
    ready: bool | None = None,
    removed: bool = False,
    undone: int = 0,
    undone_ago: float = 0,
) -> PoolNodeView:
    created = NOW - timedelta(seconds=age)
    was_ready = state in (S.READY, S.DECOMMISSIONING) if ready is None else ready
    return PoolNodeView(
        node_id=node_id,
        state=state,
        created_at=created,
        ready_at=created + timedelta(seconds=30) if was_ready else None,
        finished_at=NOW - timedelta(seconds=finished_ago) if finished_ago is not None else None,
        node_state=node_state,
        node_removed=removed,
        last_heartbeat_at=NOW - timedelta(seconds=silent) if silent is not None else None,
        decommission_failures=undone,
        decommission_failed_at=NOW - timedelta(seconds=undone_ago) if undone else None,
    )


def pool(size: int, nodes: list[PoolNodeView], min_size: int = 0, deleting: bool = False) -> PoolView:
    return PoolView(
        pool_id="pool_1",
        name="web",
        size=size,
        min_size=min_size,
        max_size=10,
        deleting=deleting,
        nodes=nodes,
    )


CASES = [
    # id, pool, provision, decommission, finished
    ("empty pool grows to its size", pool(3, []), 3, [], False),
    ("at size: nothing", pool(2, [node("a"), node("b")]), 0, [], False),
    (
        "in-flight guests count",
        pool(3, [node("a"), node("b", S.PROVISIONING), node("c", S.ENROLLING)]),
        0,
        [],
        False,
    ),
    ("one short", pool(3, [node("a"), node("b")]), 1, [], False),
    (
        "extras go newest first",
        pool(1, [node("old", age=900), node("new", age=100), node("mid", age=500)]),
        0,
        ["new", "mid"],
        False,
    ),
    (
        "in-flight guests are never removed: they settle first",
        pool(1, [node("a", age=900), node("b", S.PROVISIONING, age=10)]),
        0,
        [],
        False,
    ),
    (
        "never below min_size",
        pool(1, [node("a", age=900), node("b", age=500), node("c", age=10)], min_size=2),
        0,
        ["c"],
        False,
    ),
    (
        "ended guests count for nothing",
        pool(2, [node("a"), node("x", S.DESTROYED), node("y", S.FAILED, ready=True)]),
        1,
        [],
        False,
    ),
    (
        "decommissioning ones are made sure of",
        pool(1, [node("a"), node("b", S.DECOMMISSIONING)]),
        0,
        ["b"],
        False,
    ),
    (
        "DOWN too long: replaced",
        pool(2, [node("a"), node("b", node_state="DOWN", silent=301)]),
        1,
        ["b"],
        False,
    ),
    ("DOWN briefly: kept", pool(2, [node("a"), node("b", node_state="DOWN", silent=60)]), 0, [], False),
    ("node removed behind the pool: replaced", pool(1, [node("a", removed=True)]), 1, ["a"], False),
    (
        "deleting: everything goes",
        pool(2, [node("a"), node("b")], min_size=2, deleting=True),
        0,
        ["b", "a"],
        False,
    ),
    (
        "deleting waits for in-flight ones",
        pool(0, [node("a", S.PROVISIONING)], deleting=True),
        0,
        [],
        False,
    ),
    (
        "deleted and empty: finished",
        pool(0, [node("a", S.DESTROYED), node("b", S.FAILED)], deleting=True),
        0,
        [],
        True,
    ),
]


@pytest.mark.parametrize(
    ("view", "provision", "decommission", "finished"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_plan(view: PoolView, provision: int, decommission: list[str], finished: bool) -> None:
    plan = plan_pool(view, NOW, POLICY)

    assert (plan.provision, plan.decommission, plan.finished) == (provision, decommission, finished)


BACKOFF = [
    ("no failure", [node("a")], None),
    ("one failure 4 s ago: 6 s more", [node("f", S.FAILED, finished_ago=4, node_state=None)], 6.0),
    ("one failure long ago: go", [node("f", S.FAILED, finished_ago=11, node_state=None)], None),
    (
        "three failures: 40 s after the last",
        [node(f"f{i}", S.FAILED, finished_ago=f, node_state=None) for i, f in enumerate((100, 50, 10))],
        30.0,
    ),
    (
        "capped",
        [node(f"f{i}", S.FAILED, finished_ago=1, node_state=None) for i in range(8)],
        59.0,
    ),
    (
        "a guest READY since the failure resets it",
        [node("f", S.FAILED, finished_ago=5, node_state=None), node("ok", age=2)],
        None,
    ),
    (
        "a decommission that failed is no provisioning failure",
        [node("d", S.FAILED, finished_ago=1, ready=True)],
        None,
    ),
]


@pytest.mark.parametrize(("nodes", "wait"), [c[1:] for c in BACKOFF], ids=[c[0] for c in BACKOFF])
def test_provisioning_backoff(nodes: list[PoolNodeView], wait: float | None) -> None:
    assert provisioning_backoff(nodes, NOW, POLICY) == (pytest.approx(wait) if wait is not None else None)


def test_a_held_back_provisioning_says_when_to_look_again() -> None:
    plan = plan_pool(pool(2, [node("f", S.FAILED, finished_ago=4, node_state=None)]), NOW, POLICY)

    assert plan.provision == 0
    assert plan.wake_after_seconds == pytest.approx(6)
    assert "next try in 6 s" in plan.reason


def test_a_replacement_says_why() -> None:
    plan = plan_pool(pool(1, [node("b", node_state="DOWN", silent=400)]), NOW, POLICY)

    assert plan.replace == ["b"]
    assert "replace b: DOWN for 400 s" in plan.reason


def test_a_guest_whose_decommission_was_undone_waits_and_another_goes_in_its_place() -> None:
    nodes = [node("old", age=900), node("new", age=100, undone=1, undone_ago=4)]

    plan = plan_pool(pool(1, nodes), NOW, POLICY)

    assert plan.decommission == ["old"]  # not the newest: its decommission was just undone
    assert "new: its decommission was undone; next try in 6 s" in plan.reason


def test_with_no_other_guest_to_take_the_pool_wakes_when_the_backoff_ends() -> None:
    nodes = [node("a", age=900, undone=2, undone_ago=5)]

    plan = plan_pool(pool(0, nodes), NOW, POLICY)

    assert plan.decommission == [] and plan.wake_after_seconds == pytest.approx(15)


def test_a_down_guest_whose_decommission_was_undone_is_replaced_now_and_decommissioned_later() -> None:
    nodes = [node("b", node_state="DOWN", silent=400, undone=1, undone_ago=1)]

    plan = plan_pool(pool(1, nodes), NOW, POLICY)

    assert (plan.provision, plan.decommission, plan.replace) == (1, [], ["b"])
    assert plan.wake_after_seconds == pytest.approx(9)


@pytest.mark.parametrize(
    ("undone", "ago", "wait"),
    [(0, 0, None), (1, 4, 6.0), (1, 11, None), (3, 10, 30.0), (9, 1, 59.0)],
    ids=["never", "once, 4 s ago", "once, long ago", "three times", "capped"],
)
def test_decommission_backoff(undone: int, ago: float, wait: float | None) -> None:
    found = decommission_backoff(node("a", undone=undone, undone_ago=ago), NOW, POLICY)

    assert found == (pytest.approx(wait) if wait is not None else None)


SIZES = [
    ("fine", (0, 3, 2), None),
    ("size above max", (0, 3, 4), "size: must be between min_size (0) and max_size (3), got 4"),
    ("size below min", (2, 3, 1), "size: must be between min_size (2) and max_size (3), got 1"),
    ("max below min", (3, 2, 2), "max_size: must be at least min_size (3), got 2"),
    ("max zero", (0, 0, 0), "max_size: must be at least 1, got 0"),
]


@pytest.mark.parametrize(("sizes", "problem"), [c[1:] for c in SIZES], ids=[c[0] for c in SIZES])
def test_check_sizes(sizes: tuple[int, int, int], problem: str | None) -> None:
    assert check_sizes(*sizes) == problem
