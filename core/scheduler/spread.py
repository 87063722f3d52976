"""Replicas per node for each spread key, counting those already running."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from core.scheduler.model import ExistingReplica


class SpreadCounts:
    """How many replicas of one spread key are on each node, and `fewest`: the least on any READY node.

    Pools hold only READY nodes, so no node in a pool has fewer than `fewest`: a walk in least-allocated order
    can stop at the first fitting node that has that many."""

    def __init__(self, ready: frozenset[str]) -> None:
        self.on_node: dict[str, int] = {}
        self.fewest = 0
        self._ready = ready
        self._ready_nodes_with = Counter({0: len(ready)})

    def add(self, node_id: str) -> None:
        before = self.on_node.get(node_id, 0)
        self.on_node[node_id] = before + 1
        if node_id in self._ready:
            self._ready_nodes_with[before] -= 1
            self._ready_nodes_with[before + 1] += 1
            while self._ready_nodes_with[self.fewest] == 0:
                self.fewest += 1


class SpreadBook:
    """SpreadCounts per spread key, created on first use."""

    def __init__(self, ready: frozenset[str], existing: Iterable[ExistingReplica]) -> None:
        self._ready = ready
        self._by_key: dict[str, SpreadCounts] = {}
        for replica in existing:
            self[replica.spread_key].add(replica.node_id)

    def __getitem__(self, spread_key: str) -> SpreadCounts:
        counts = self._by_key.get(spread_key)
        if counts is None:
            counts = self._by_key[spread_key] = SpreadCounts(self._ready)
        return counts
