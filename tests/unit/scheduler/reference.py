"""The scheduler's rules written the obvious way: every node filtered and scored for every replica.

Slow (replicas times nodes) and plainly right: the indexed `schedule` is checked against it, decision by
decision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from core.scheduler import (
    ExistingReplica,
    NodeInfo,
    Placement,
    ReplicaRequest,
    Schedule,
    Strategy,
    Unplaced,
    parse_constraint,
)
from core.scheduler.feasibility import rejection
from core.scheduler.index import allocated_fraction


def reference_schedule(
    nodes: Sequence[NodeInfo],
    replicas: Sequence[ReplicaRequest],
    strategy: Strategy = Strategy.SPREAD,
    existing: Iterable[ExistingReplica] = (),
) -> Schedule:
    allocated = {node.node_id: [node.allocated.cpu_millis, node.allocated.memory_mb] for node in nodes}
    running = Counter((replica.spread_key, replica.node_id) for replica in existing)

    def free(node: NodeInfo) -> tuple[int, int]:
        cpu, memory = allocated[node.node_id]
        return node.capacity.cpu_millis - cpu, node.capacity.memory_mb - memory

    def fraction(node: NodeInfo) -> float:
        cpu, memory = allocated[node.node_id]
        return allocated_fraction(cpu, memory, node.capacity)

    placements, unplaced = [], []
    for replica in replicas:
        constraints = list(dict.fromkeys(parse_constraint(text) for text in replica.constraints))
        reasons = {
            node.node_id: rejection(node, *free(node), replica.resources, constraints) for node in nodes
        }
        feasible = [node for node in nodes if reasons[node.node_id] is None]
        if not feasible:
            unplaced.append(
                Unplaced(replica_id=replica.replica_id, reasons={k: v for k, v in reasons.items() if v})
            )
            continue
        if strategy is Strategy.SPREAD:
            best = min(
                feasible,
                key=lambda n: (running[(replica.spread_group, n.node_id)], fraction(n), n.node_id),
            )
        else:
            best = min(feasible, key=lambda n: (-fraction(n), n.node_id))
        allocated[best.node_id][0] += replica.resources.cpu_millis
        allocated[best.node_id][1] += replica.resources.memory_mb
        running[(replica.spread_group, best.node_id)] += 1
        placements.append(Placement(replica_id=replica.replica_id, node_id=best.node_id))
    return Schedule(placements=placements, unplaced=unplaced)
