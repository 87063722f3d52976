"""The cluster during one scheduling pass.

Free capacity per node and, per constraint set, a *pool*: the READY nodes that satisfy it, sorted best-first
by the strategy's order key. A placement re-sorts only the node it lands on (a bisect per pool that holds it),
so picking a node is a walk from the front of a pool that usually stops within a few nodes, not a scan of the
cluster. A node that can no longer fit even the smallest request of the pass leaves every pool for good.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence

from core.scheduler.constraints import Constraint
from core.scheduler.model import NodeInfo, NodeState, Resources, Strategy

OrderKey = tuple[float, str]
"""(score, node_id): pools are sorted ascending, so ties go to the smaller node_id."""


def allocated_fraction(cpu: int, memory: int, capacity: Resources) -> float:
    """The mean of the CPU and memory fractions in use (Kubernetes' Least/MostAllocated); a dimension with no
    capacity counts as full."""
    cpu_fraction = cpu / capacity.cpu_millis if capacity.cpu_millis else 1.0
    memory_fraction = memory / capacity.memory_mb if capacity.memory_mb else 1.0
    return (cpu_fraction + memory_fraction) / 2


def order_key(strategy: Strategy, fraction: float, node_id: str) -> OrderKey:
    """SPREAD walks the least allocated nodes first, BINPACK the most allocated."""
    return (fraction if strategy is Strategy.SPREAD else -fraction, node_id)


class NodeIndex:
    def __init__(self, nodes: Sequence[NodeInfo], strategy: Strategy, smallest: Resources) -> None:
        self.strategy = strategy
        self.nodes = {node.node_id: node for node in nodes}
        self.free_cpu = {node.node_id: node.capacity.cpu_millis - node.allocated.cpu_millis for node in nodes}
        self.free_memory = {
            node.node_id: node.capacity.memory_mb - node.allocated.memory_mb for node in nodes
        }
        self.ready = frozenset(node.node_id for node in nodes if node.state is NodeState.READY)
        self.allocations: list[str] = []  # node_id per allocation, in order: what changed since a given point
        self._allocated = {
            node.node_id: (node.allocated.cpu_millis, node.allocated.memory_mb) for node in nodes
        }
        self._smallest = smallest
        self._key = {
            node_id: self._order_key(node_id) for node_id in sorted(self.ready) if self._may_fit_more(node_id)
        }
        self._pools: dict[frozenset[Constraint], list[OrderKey]] = {}  # the same set in any order: one pool
        self._pools_of: dict[str, list[list[OrderKey]]] = {node_id: [] for node_id in self._key}

    def pool(self, constraints: tuple[Constraint, ...]) -> list[OrderKey]:
        """The READY nodes satisfying `constraints` that may still fit a replica, best first (read-only)."""
        pool = self._pools.get(frozenset(constraints))
        if pool is None:
            pool = [
                key
                for node_id, key in self._key.items()
                if all(constraint.violation(self.nodes[node_id].labels) is None for constraint in constraints)
            ]
            pool.sort()
            self._pools[frozenset(constraints)] = pool
            for _, node_id in pool:
                self._pools_of[node_id].append(pool)
        return pool

    def free(self, node_id: str) -> tuple[int, int]:
        """Free (CPU millis, memory MiB); negative when the node came in over-committed."""
        return self.free_cpu[node_id], self.free_memory[node_id]

    def allocate(self, node_id: str, request: Resources) -> None:
        cpu, memory = self._allocated[node_id]
        self._allocated[node_id] = (cpu + request.cpu_millis, memory + request.memory_mb)
        self.free_cpu[node_id] -= request.cpu_millis
        self.free_memory[node_id] -= request.memory_mb
        self.allocations.append(node_id)

        old_key, pools = self._key[node_id], self._pools_of[node_id]
        for pool in pools:
            del pool[bisect_left(pool, old_key)]
        if not self._may_fit_more(node_id):
            del self._key[node_id], self._pools_of[node_id]
            return
        new_key = self._key[node_id] = self._order_key(node_id)
        for pool in pools:
            insort(pool, new_key)

    def _order_key(self, node_id: str) -> OrderKey:
        fraction = allocated_fraction(*self._allocated[node_id], self.nodes[node_id].capacity)
        return order_key(self.strategy, fraction, node_id)

    def _may_fit_more(self, node_id: str) -> bool:
        return (
            self.free_cpu[node_id] >= self._smallest.cpu_millis
            and self.free_memory[node_id] >= self._smallest.memory_mb
        )
