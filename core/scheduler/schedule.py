"""`schedule`: place replicas on nodes, one at a time in the order given, as Nomad and Kubernetes do it:
feasibility filters (state, constraints, capacity), then the best-scoring feasible node."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from core.scheduler.constraints import Constraint, parse_constraint
from core.scheduler.feasibility import Rejections
from core.scheduler.index import NodeIndex, OrderKey
from core.scheduler.model import (
    ExistingReplica,
    NodeInfo,
    Placement,
    ReplicaRequest,
    Resources,
    Schedule,
    Strategy,
    Unplaced,
)
from core.scheduler.spread import SpreadBook, SpreadCounts


def schedule(
    nodes: Sequence[NodeInfo],
    replicas: Sequence[ReplicaRequest],
    strategy: Strategy = Strategy.SPREAD,
    existing: Iterable[ExistingReplica] = (),
) -> Schedule:
    """Place each replica on a READY node that satisfies its constraints and has room for it.

    SPREAD: the node with the fewest replicas of the same spread key (existing ones included), then the least
    allocated. BINPACK: the most allocated node that still fits. Ties go to the smaller node_id, so the same
    input always gives the same schedule. A replica that fits nowhere is unplaced with a reason per node.
    """
    _require_unique("node", [node.node_id for node in nodes])
    _require_unique("replica", [replica.replica_id for replica in replicas])
    index = NodeIndex(nodes, strategy, smallest=_smallest_request(replicas))
    spread = SpreadBook(index.ready, existing)
    rejections = Rejections(index)
    constraint_sets = _constraint_sets(replicas)

    placements: list[Placement] = []
    unplaced: list[Unplaced] = []
    for replica in replicas:
        constraints = constraint_sets[tuple(replica.constraints)]
        pool = index.pool(constraints)
        counts = spread[replica.spread_group]
        if strategy is Strategy.SPREAD:
            node_id = _fewest_then_least_allocated(pool, replica.resources, counts, index)
        else:
            node_id = _most_allocated(pool, replica.resources, index)

        if node_id is None:
            reasons = rejections.of(replica.resources, constraints)
            unplaced.append(Unplaced(replica_id=replica.replica_id, reasons=reasons))
            continue
        index.allocate(node_id, replica.resources)
        counts.add(node_id)
        placements.append(Placement(replica_id=replica.replica_id, node_id=node_id))
    return Schedule(placements=placements, unplaced=unplaced)


def _fewest_then_least_allocated(
    pool: list[OrderKey], request: Resources, counts: SpreadCounts, index: NodeIndex
) -> str | None:
    cpu, memory = request.cpu_millis, request.memory_mb
    free_cpu, free_memory, on_node = index.free_cpu, index.free_memory, counts.on_node
    best, best_count = None, 0
    for _, node_id in pool:  # least allocated first
        if cpu > free_cpu[node_id] or memory > free_memory[node_id]:
            continue
        count = on_node.get(node_id, 0)
        if count == counts.fewest:
            return node_id
        if best is None or count < best_count:
            best, best_count = node_id, count
    return best


def _most_allocated(pool: list[OrderKey], request: Resources, index: NodeIndex) -> str | None:
    cpu, memory = request.cpu_millis, request.memory_mb
    free_cpu, free_memory = index.free_cpu, index.free_memory
    for _, node_id in pool:  # most allocated first
        if cpu <= free_cpu[node_id] and memory <= free_memory[node_id]:
            return node_id
    return None


def _constraint_sets(replicas: Sequence[ReplicaRequest]) -> dict[tuple[str, ...], tuple[Constraint, ...]]:
    """Each distinct constraint list, parsed, without repeats, in the order given (reasons keep it)."""
    raw_sets = {tuple(replica.constraints) for replica in replicas}
    return {raw: tuple(dict.fromkeys(parse_constraint(text) for text in raw)) for raw in raw_sets}


def _smallest_request(replicas: Sequence[ReplicaRequest]) -> Resources:
    return Resources(
        cpu_millis=min((replica.resources.cpu_millis for replica in replicas), default=0),
        memory_mb=min((replica.resources.memory_mb for replica in replicas), default=0),
    )


def _require_unique(kind: str, ids: list[str]) -> None:
    duplicates = sorted(id_ for id_, seen in Counter(ids).items() if seen > 1)
    if duplicates:
        raise ValueError(f"{kind} ids must be unique; repeated: {', '.join(duplicates)}")
