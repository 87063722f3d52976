"""Feasibility filters, in the order they are reported: node state, then constraints, then free capacity.

A node is feasible for a replica exactly when `rejection` returns None; the first filter that fails gives the
reason (a DOWN node's free memory is beside the point). Within a filter every failure is listed."""

from __future__ import annotations

from collections.abc import Iterable

from core.scheduler.constraints import Constraint
from core.scheduler.index import NodeIndex
from core.scheduler.model import NodeInfo, NodeState, Resources


def rejection(
    node: NodeInfo, free_cpu: int, free_memory: int, request: Resources, constraints: Iterable[Constraint]
) -> str | None:
    """Why `request` cannot go on `node` with this much free capacity, or None when it can."""
    if node.state is not NodeState.READY:
        return f"node is {node.state}"
    violations = [reason for constraint in constraints if (reason := constraint.violation(node.labels))]
    if violations:
        return "; ".join(violations)
    shortfalls = []
    if request.cpu_millis > free_cpu:
        shortfalls.append(f"needs {request.cpu_millis}m CPU, {max(free_cpu, 0)}m free")
    if request.memory_mb > free_memory:
        shortfalls.append(f"needs {request.memory_mb} MiB memory, {max(free_memory, 0)} MiB free")
    return "; ".join(shortfalls) or None


class Rejections:
    """Every node's reason to reject a request; computed only for unplaced replicas, as it visits every node.

    When many replicas do not fit (a full cluster), most are alike: the reasons of the last identical request
    (same resources and constraints) are reused, recomputing only the nodes allocated to since."""

    def __init__(self, index: NodeIndex) -> None:
        self._index = index
        self._last: dict[tuple[Resources, tuple[Constraint, ...]], tuple[dict[str, str], int]] = {}

    def of(self, request: Resources, constraints: tuple[Constraint, ...]) -> dict[str, str]:
        index = self._index
        last = self._last.get((request, constraints))
        if last is None:
            reasons: dict[str, str] = {}
            stale = list(index.nodes)
        else:
            reasons, seen = last
            stale = list(dict.fromkeys(index.allocations[seen:]))
        for node_id in stale:
            reason = rejection(index.nodes[node_id], *index.free(node_id), request, constraints)
            if reason is None:  # the pools and the filters disagree: a bug, never a silent skip
                raise AssertionError(f"a request fits node {node_id} but was not placed there")
            reasons[node_id] = reason
        self._last[(request, constraints)] = (reasons, len(index.allocations))
        return dict(reasons)
