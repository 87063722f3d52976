"""Node pools, the pure part: what NodePoolWorkflow does next with a pool, from a snapshot of it.

    plan_pool(view, now, policy) → PoolPlan(provision=n, decommission=[node ids], wake_after_seconds, ...)

The pool's guests are counted by their PoolNodeState:

    in flight  PROVISIONING, ENROLLING   count toward the size; never removed, and while there are
                                         any, no guest is removed (a new one may still fail)
    serving    READY                     count toward the size
    leaving    DECOMMISSIONING           a decommission is (made sure to be) running for each
    ended      FAILED, DESTROYED         count for nothing

A READY guest whose node has been DOWN for `replace_down_after_seconds`, or whose node was removed behind
the pool's back, is replaced: decommissioned, and no longer counted, so a new one is provisioned in the
same round. Extras go newest first and only from the serving ones; a pool never goes below `min_size`
(0 once it is being deleted). After provisioning failures with no READY guest since, the next attempt
waits (exponential backoff), so a pool whose template cannot be cloned does not clone in a loop.

A decommission that fails before its guest is stopped (say, the drain times out: the replicas found no
other node) is undone: the node is uncordoned and serves again, READY, with the failure counted. That
guest is held back from the next decommission by the same backoff, and another serving one is taken in
its place when there is one, so a guest that cannot drain is not drained in a loop.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from core.contracts import Contract

POOL_ID_PREFIX = "pool"


class PoolNodeState(StrEnum):
    PROVISIONING = "PROVISIONING"
    ENROLLING = "ENROLLING"
    READY = "READY"
    FAILED = "FAILED"
    DECOMMISSIONING = "DECOMMISSIONING"
    DESTROYED = "DESTROYED"


IN_FLIGHT = frozenset({PoolNodeState.PROVISIONING, PoolNodeState.ENROLLING})
ENDED = frozenset({PoolNodeState.FAILED, PoolNodeState.DESTROYED})


class PoolPolicy(Contract):
    replace_down_after_seconds: float = Field(default=300, gt=0)
    retry_after_failure_seconds: float = Field(default=15, gt=0, description="first backoff after a failure")
    retry_after_failure_max_seconds: float = Field(default=600, gt=0)


class PoolNodeView(Contract):
    node_id: str
    state: PoolNodeState
    created_at: datetime
    ready_at: datetime | None = None
    finished_at: datetime | None = None
    node_state: str | None = Field(default=None, description="the enrolled node's state; None: not enrolled")
    node_removed: bool = False
    last_heartbeat_at: datetime | None = None
    decommission_failures: int = Field(default=0, ge=0, description="undone decommissions since READY")
    decommission_failed_at: datetime | None = None


class PoolView(Contract):
    pool_id: str
    name: str
    size: int = Field(ge=0)
    min_size: int = Field(ge=0)
    max_size: int = Field(ge=0)
    deleting: bool = False
    removed: bool = False
    nodes: list[PoolNodeView] = Field(default_factory=list)


class PoolPlan(Contract):
    provision: int = Field(default=0, ge=0, description="how many new guests to provision now")
    decommission: list[str] = Field(default_factory=list, description="node ids to decommission")
    replace: list[str] = Field(default_factory=list, description="the decommissioned ones that are replaced")
    wake_after_seconds: float | None = Field(
        default=None, description="when a held-back provisioning may go ahead"
    )
    finished: bool = Field(default=False, description="a deleted pool with nothing left: remove it")
    reason: str = ""


def needs_replacement(node: PoolNodeView, now: datetime, policy: PoolPolicy) -> str | None:
    """Why a READY guest is replaced (its node DOWN too long, or removed), or None."""
    if node.state is not PoolNodeState.READY:
        return None
    if node.node_removed:
        return "its node was removed"
    if node.node_state == "DOWN":
        since = node.last_heartbeat_at or node.ready_at or node.created_at
        silent = (now - since).total_seconds()
        if silent >= policy.replace_down_after_seconds:
            return f"DOWN for {silent:.0f} s"
    return None


def provisioning_backoff(nodes: list[PoolNodeView], now: datetime, policy: PoolPolicy) -> float | None:
    """Seconds to wait before the next provisioning: after k failures with no guest READY since (and
    none in flight), the first backoff doubled k-1 times, capped; None: go ahead."""
    last_ready = max((n.ready_at for n in nodes if n.ready_at is not None), default=None)
    failures = sorted(
        n.finished_at
        for n in nodes
        if n.state is PoolNodeState.FAILED
        and n.ready_at is None
        and n.finished_at is not None
        and (last_ready is None or n.finished_at > last_ready)
    )
    if not failures:
        return None
    return _backoff(len(failures), failures[-1], now, policy)


def _backoff(failures: int, last: datetime, now: datetime, policy: PoolPolicy) -> float | None:
    delay = min(
        policy.retry_after_failure_seconds * 2 ** (failures - 1), policy.retry_after_failure_max_seconds
    )
    remaining = delay - (now - last).total_seconds()
    return remaining if remaining > 0 else None


def decommission_backoff(node: PoolNodeView, now: datetime, policy: PoolPolicy) -> float | None:
    """Seconds before a READY guest whose decommission was undone may be decommissioned again; None: now."""
    if node.state is not PoolNodeState.READY or not node.decommission_failures:
        return None
    if node.decommission_failed_at is None:
        return None
    return _backoff(node.decommission_failures, node.decommission_failed_at, now, policy)


def plan_pool(view: PoolView, now: datetime, policy: PoolPolicy) -> PoolPlan:
    if view.removed:
        return PoolPlan(finished=True, reason="the pool is removed")
    target = 0 if view.deleting else view.size
    floor = 0 if view.deleting else view.min_size
    leaving = [n.node_id for n in view.nodes if n.state is PoolNodeState.DECOMMISSIONING]
    replace = {n.node_id: why for n in view.nodes if (why := needs_replacement(n, now, policy)) is not None}
    in_flight = [n for n in view.nodes if n.state in IN_FLIGHT]
    serving = [n for n in view.nodes if n.state is PoolNodeState.READY and n.node_id not in replace]
    active = len(in_flight) + len(serving)
    reasons = [f"replace {node_id}: {why}" for node_id, why in replace.items()]
    held = {n.node_id: wait for n in view.nodes if (wait := decommission_backoff(n, now, policy)) is not None}
    reasons += [
        f"{node_id}: its decommission was undone; next try in {wait:.0f} s" for node_id, wait in held.items()
    ]

    extras: list[str] = []
    provision = 0
    wake_after: float | None = None
    if active > target and in_flight:
        reasons.append(f"{active} guests for a size of {target}: remove once the new ones settle")
    elif active > target:
        removable = min(active - target, active - floor, len(serving))
        # Newest first, those whose decommission was just undone last (held back while their backoff runs).
        candidates = sorted(
            serving, key=lambda n: (n.node_id not in held, n.created_at, n.node_id), reverse=True
        )
        chosen = candidates[: max(removable, 0)]
        extras = [n.node_id for n in chosen if n.node_id not in held]
        if extras:
            reasons.append(f"{active} guests for a size of {target}: remove {len(extras)}")
        waits = [held[n.node_id] for n in chosen if n.node_id in held]
        wake_after = min(waits, default=None)
    elif active < target:
        wake_after = provisioning_backoff(view.nodes, now, policy) if not in_flight else None
        if wake_after is None:
            provision = target - active
            reasons.append(f"{active} guests for a size of {target}: add {provision}")
        else:
            reasons.append(f"{active} guests for a size of {target}: next try in {wake_after:.0f} s")

    decommission = [*leaving, *(node_id for node_id in replace if node_id not in held), *extras]
    waits = [
        wait for wait in (wake_after, *(held[node_id] for node_id in replace if node_id in held)) if wait
    ]
    wake_after = min(waits, default=None)
    finished = view.deleting and not decommission and not in_flight and not serving
    return PoolPlan(
        provision=provision,
        decommission=list(dict.fromkeys(decommission)),
        replace=list(replace),
        wake_after_seconds=wake_after,
        finished=finished,
        reason="; ".join(reasons),
    )


def check_sizes(min_size: int, max_size: int, size: int) -> str | None:
    """Why these sizes are refused (which one, and the bound), or None."""
    if min_size < 0:
        return f"min_size: must be at least 0, got {min_size}"
    if max_size < 1:
        return f"max_size: must be at least 1, got {max_size}"
    if max_size < min_size:
        return f"max_size: must be at least min_size ({min_size}), got {max_size}"
    if not min_size <= size <= max_size:
        return f"size: must be between min_size ({min_size}) and max_size ({max_size}), got {size}"
    return None
