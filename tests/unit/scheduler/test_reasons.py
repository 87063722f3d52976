"""Why a replica was not placed: one reason per node, naming the first filter it fails (state, then
constraints, then capacity) in words an operator can act on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.scheduler import (
    Constraint,
    NodeInfo,
    NodeState,
    ReplicaRequest,
    Resources,
    parse_constraint,
    schedule,
)
from tests.unit.scheduler.support import node, replica


@pytest.mark.parametrize(
    ("target", "request_", "reason"),
    [
        pytest.param(node("n", NodeState.CORDONED), replica("r"), "node is CORDONED", id="cordoned"),
        pytest.param(node("n", NodeState.DRAINING), replica("r"), "node is DRAINING", id="draining"),
        pytest.param(node("n", NodeState.DOWN), replica("r"), "node is DOWN", id="down"),
        pytest.param(node("n", memory=1_024, used_memory=768), replica("r", memory=512),
                     "needs 512 MiB memory, 256 MiB free", id="memory"),
        pytest.param(node("n", cpu=1_000, used_cpu=500), replica("r", cpu=1_000),
                     "needs 1000m CPU, 500m free", id="cpu"),
        pytest.param(node("n", cpu=1_000, used_cpu=500, memory=1_024, used_memory=768),
                     replica("r", cpu=1_000, memory=512),
                     "needs 1000m CPU, 500m free; needs 512 MiB memory, 256 MiB free", id="cpu-and-memory"),
        pytest.param(node("n", cpu=1_000, used_cpu=1_200), replica("r", cpu=100),
                     "needs 100m CPU, 0m free", id="over-committed-before-the-pass"),
        pytest.param(node("n", zone="us"), replica("r", constraints=("zone=eu",)),
                     "constraint zone=eu: node has zone=us", id="label-differs"),
        pytest.param(node("n"), replica("r", constraints=("zone=eu",)),
                     "constraint zone=eu: node has no label zone", id="label-missing"),
        pytest.param(node("n", gpu="true"), replica("r", constraints=("gpu!=true",)),
                     "constraint gpu!=true: node has gpu=true", id="label-excluded"),
        pytest.param(node("n", zone="us", disk="hdd"), replica("r", constraints=("zone=eu", "disk=ssd")),
                     "constraint zone=eu: node has zone=us; constraint disk=ssd: node has disk=hdd",
                     id="every-failed-constraint"),
        pytest.param(node("n", NodeState.DOWN, zone="us"), replica("r", cpu=9_000, constraints=("zone=eu",)),
                     "node is DOWN", id="state-first"),
        pytest.param(node("n", zone="us"), replica("r", cpu=9_000, constraints=("zone=eu",)),
                     "constraint zone=eu: node has zone=us", id="constraints-before-capacity"),
    ],
)  # fmt: skip
def test_reason(target: NodeInfo, request_: ReplicaRequest, reason: str) -> None:
    (unplaced,) = schedule([target], [request_]).unplaced

    assert unplaced.reasons == {"n": reason}


def test_every_node_gets_its_own_reason() -> None:
    nodes = [
        node("a", NodeState.DOWN),
        node("b", zone="us"),
        node("c", zone="eu", cpu=200),
        node("d", zone="eu"),
    ]
    requests = [
        replica("r0", cpu=3_000, constraints=("zone=eu",)),
        replica("r1", cpu=3_000, constraints=("zone=eu",)),
    ]

    result = schedule(nodes, requests)

    assert [(p.replica_id, p.node_id) for p in result.placements] == [("r0", "d")]
    (unplaced,) = result.unplaced
    assert unplaced.reasons == {
        "a": "node is DOWN",
        "b": "constraint zone=eu: node has zone=us",
        "c": "needs 3000m CPU, 200m free",
        "d": "needs 3000m CPU, 1000m free",  # after r0 went there
    }


def test_reasons_follow_the_allocations_between_alike_replicas() -> None:
    nodes = [node("a", cpu=1_000), node("b", cpu=1_000)]
    requests = [replica("big-0", cpu=2_000), replica("small", cpu=600), replica("big-1", cpu=2_000)]

    big_0, big_1 = schedule(nodes, requests).unplaced

    assert big_0.reasons == {"a": "needs 2000m CPU, 1000m free", "b": "needs 2000m CPU, 1000m free"}
    assert big_1.reasons == {"a": "needs 2000m CPU, 400m free", "b": "needs 2000m CPU, 1000m free"}


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("zone=eu", Constraint(key="zone", equal=True, value="eu"), id="equal"),
        pytest.param("gpu!=true", Constraint(key="gpu", equal=False, value="true"), id="not-equal"),
        pytest.param("tier=", Constraint(key="tier", equal=True, value=""), id="empty-value"),
        pytest.param("a=b=c", Constraint(key="a", equal=True, value="b=c"), id="value-with-equals"),
        pytest.param("a=b!=c", Constraint(key="a", equal=True, value="b!=c"), id="value-with-not-equals"),
        pytest.param("dockyard.io/pool=gpu", Constraint(key="dockyard.io/pool", equal=True, value="gpu"),
                     id="path-like-key"),
    ],
)  # fmt: skip
def test_constraint_syntax(text: str, parsed: Constraint) -> None:
    assert parse_constraint(text) == parsed
    assert str(parsed) == text


@pytest.mark.parametrize("text", ["zone", "=eu", "!=eu", "zone==eu", "zo ne=eu", ""])
def test_a_malformed_constraint_is_refused_when_the_request_is_made(text: str) -> None:
    with pytest.raises(ValidationError, match=f"constraint '{text}': expected"):
        replica("r", constraints=(text,))


def test_resources_are_not_negative() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Resources(cpu_millis=-1, memory_mb=0)
