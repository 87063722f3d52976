"""core/autoscaling.py: the HPA algorithm, table by table, then its properties under generated loads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.autoscaling import (
    AutoscalingPolicy,
    Behaviour,
    History,
    Observation,
    Recommendation,
    ReplicaUsage,
    ScaleEvent,
    Targets,
    decide,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CPU = AutoscalingPolicy(min_replicas=1, max_replicas=10, targets=Targets(cpu_percent=50))
QUIET = History()


def cpu(*shares: float | None, unready: int = 0) -> Observation:
    replicas = [ReplicaUsage(replica=f"r{i}", cpu=share) for i, share in enumerate(shares)]
    replicas += [ReplicaUsage(replica=f"u{i}", ready=False) for i in range(unready)]
    return Observation(current=len(replicas), replicas=replicas)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


CASES = [
    # id, policy, observation, history, desired
    ("at the target: stays", CPU, cpu(0.5, 0.5), QUIET, 2),
    ("within the tolerance: stays", CPU, cpu(0.54, 0.54), QUIET, 2),
    ("double the target: doubles", CPU, cpu(1.0, 1.0), QUIET, 4),
    ("a hot replica among cool ones: the average decides", CPU, cpu(1.0, 0.2, 0.3), QUIET, 3),
    ("triple: 2 → 6", CPU, cpu(1.5, 1.5), QUIET, 6),
    ("up is capped at max_replicas", CPU, cpu(*[5.0] * 8), QUIET, 10),
    ("a step up is at most 4 replicas or 100% per period: 2 → 6, not 20", CPU, cpu(5.0, 5.0), QUIET, 6),
    (
        "a step up is at most 4 replicas or 100% per period: 6 → 12, not 24",
        CPU.model_copy(update={"max_replicas": 50}),
        cpu(*[2.0] * 6),
        QUIET,
        12,
    ),
    ("idle, no history: down to what the load needs", CPU, cpu(0.1, 0.1, 0.1, 0.1), QUIET, 1),
    (
        "idle, but 4 were recommended 2 minutes ago: the window holds 4",
        CPU,
        cpu(0.1, 0.1, 0.1, 0.1),
        History(recommendations=[Recommendation(ago(120), 4)]),
        4,
    ),
    (
        "idle, and the recommendation of 4 is older than the window",
        CPU,
        cpu(0.1, 0.1, 0.1, 0.1),
        History(recommendations=[Recommendation(ago(301), 4)]),
        1,
    ),
    ("never below min_replicas", CPU.model_copy(update={"min_replicas": 2}), cpu(0.01, 0.01, 0.01), QUIET, 2),
    (
        "starting replicas count as idle when scaling up: 2 hot + 2 starting",
        CPU,
        cpu(1.0, 1.0, unready=2),
        QUIET,
        4,
    ),
    (
        "a starting replica is left out of a scale down: the ready ones decide",
        CPU,
        cpu(0.2, 0.2, unready=1),
        QUIET,
        1,
    ),
    (
        "an unmeasured replica counts at the target when scaling down",
        CPU,
        cpu(0.1, 0.1, None),
        QUIET,
        2,
    ),
    ("no metric at all: stays", CPU, cpu(None, None), QUIET, 2),
    (
        "added 4 this period already: no more until it ends",
        CPU,
        cpu(*[2.0] * 8),
        History(scales=[ScaleEvent(ago(5), 4, 8)]),
        8,
    ),
]


@pytest.mark.parametrize(
    ("policy", "seen", "history", "desired"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decide(policy: AutoscalingPolicy, seen: Observation, history: History, desired: int) -> None:
    assert decide(policy, seen, history, NOW).desired == desired


def test_requests_per_second_per_replica() -> None:
    policy = AutoscalingPolicy(min_replicas=1, max_replicas=20, targets=Targets(requests_per_second=10))
    seen = Observation(
        current=2, replicas=[ReplicaUsage(replica="a"), ReplicaUsage(replica="b")], requests_per_second=55
    )

    decision = decide(policy, seen, QUIET, NOW)

    assert decision.desired == 6
    assert decision.reason == "requests_per_second 27.5/s per replica for a target of 10/s: 2 → 6"


def test_the_largest_metric_wins_and_the_reason_says_which() -> None:
    policy = AutoscalingPolicy(
        min_replicas=1, max_replicas=20, targets=Targets(cpu_percent=50, memory_percent=50)
    )
    seen = Observation(
        current=2,
        replicas=[
            ReplicaUsage(replica="a", cpu=0.6, memory=1.0),
            ReplicaUsage(replica="b", cpu=0.6, memory=1.0),
        ],
    )

    decision = decide(policy, seen, QUIET, NOW)

    assert [(p.metric, p.replicas) for p in decision.proposals] == [("cpu", 3), ("memory", 4)]
    assert decision.desired == 4 and decision.reason.startswith("memory 100% for a target of 50%")


def test_a_service_scaled_to_zero_is_left_alone() -> None:
    assert decide(CPU, Observation(current=0), QUIET, NOW).desired == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"min_replicas": 3, "max_replicas": 2, "targets": {"cpu_percent": 50}},
            "max_replicas: must be at least",
        ),
        ({"min_replicas": 1, "max_replicas": 2, "targets": {}}, "targets: give at least one"),
        ({"min_replicas": 0, "max_replicas": 2, "targets": {"cpu_percent": 50}}, "min_replicas"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AutoscalingPolicy.model_validate(fields)


# --- properties --------------------------------------------------------------------------------------

policies = st.builds(
    lambda low, span, target: AutoscalingPolicy(
        min_replicas=low, max_replicas=low + span, targets=Targets(cpu_percent=target)
    ),
    st.integers(1, 5),
    st.integers(0, 15),
    st.sampled_from([30.0, 50.0, 70.0, 90.0]),
)
loads = st.floats(0, 5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(policy=policies, current=st.integers(1, 25), load=loads)
def test_never_outside_min_and_max(policy: AutoscalingPolicy, current: int, load: float) -> None:
    desired = decide(policy, cpu(*[load] * current), QUIET, NOW).desired

    assert policy.min_replicas <= desired <= policy.max_replicas


@settings(max_examples=300, deadline=None)
@given(policy=policies, current=st.integers(1, 20), low=loads, more=st.floats(0, 3, allow_nan=False))
def test_more_load_never_asks_for_fewer_replicas(
    policy: AutoscalingPolicy, current: int, low: float, more: float
) -> None:
    calm = decide(policy, cpu(*[low] * current), QUIET, NOW).desired
    busy = decide(policy, cpu(*[low + more] * current), QUIET, NOW).desired

    assert busy >= calm


@settings(max_examples=200, deadline=None)
@given(policy=policies, start=st.integers(1, 20), work=st.floats(0.1, 20, allow_nan=False))
def test_a_constant_load_settles_and_never_flaps(policy: AutoscalingPolicy, start: int, work: float) -> None:
    """`work` CPUs of load spread over the replicas, evaluated every 15 s for 20 minutes: once the count
    has changed direction it never changes back (no flapping), and it ends still."""
    replicas, recommendations, scales, moves = start, [], [], []
    for tick in range(80):
        now = NOW + timedelta(seconds=15 * tick)
        share = work / replicas
        history = History(recommendations=list(recommendations), scales=list(scales))
        decision = decide(policy, cpu(*[share] * replicas), history, now)
        recommendations.append(Recommendation(now, decision.recommendation))
        if decision.changes:
            scales.append(ScaleEvent(now, replicas, decision.desired))
            moves.append(1 if decision.desired > replicas else -1)
            replicas = decision.desired
    assert len(set(moves)) <= 1, f"the count went both ways: {moves}"
    settled = NOW + timedelta(seconds=15 * 80)
    history = History(recommendations=recommendations, scales=scales)
    assert not decide(
        policy, cpu(*[work / replicas] * replicas), history, settled
    ).changes  # still by the end


def test_default_behaviour_is_the_hpas() -> None:
    behaviour = Behaviour()

    assert (behaviour.scale_up_window_seconds, behaviour.scale_down_window_seconds) == (0, 300)
    assert (behaviour.scale_up_max_replicas, behaviour.scale_up_max_percent) == (4, 100)
    assert (behaviour.scale_down_max_percent, behaviour.period_seconds) == (100, 15)
