"""Autoscaling, the pure part: how many replicas a service wants, by Kubernetes' HPA algorithm.

    decide(policy, observation, history, now) → Decision(desired, proposals, reason, ...)

Per metric (CPU and memory as a share of what each replica reserves, requests per second per replica):

    desired = ceil(current * value / target)          the largest of the metrics wins

A ratio within TOLERANCE of 1 changes nothing. As the HPA does, replicas that are not ready yet, or whose
metrics are missing, are counted conservatively: when the ready ones ask for more, those count as using
nothing (so a burst of starting replicas does not look like load); when the ready ones ask for fewer, a
replica without metrics counts as exactly at the target, and one not ready is left out (so a replica
that just lost its scrape does not make the service shrink). If counting them reverses the direction,
nothing changes. With no metric at all, nothing changes either.

Then the behaviour: the recommendation is stabilized (scaling up takes the lowest recommendation of the
scale-up window, scaling down the highest of the scale-down window, 300 s by default: a load that drops
for a minute does not shed replicas), limited to a maximum step per period (up: 4 replicas or 100%,
whichever is more; down: 100%), and kept within min..max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import Field, model_validator

from core.contracts import Contract

TOLERANCE = 0.1


class Targets(Contract):
    """What one replica should use on average; any combination, at least one."""

    cpu_percent: float | None = Field(default=None, gt=0, le=1000, description="of the CPU it reserves")
    memory_percent: float | None = Field(default=None, gt=0, le=1000, description="of the memory it reserves")
    requests_per_second: float | None = Field(default=None, gt=0, description="per replica, through Traefik")

    @model_validator(mode="after")
    def _one_at_least(self) -> Targets:
        if self.cpu_percent is None and self.memory_percent is None and self.requests_per_second is None:
            raise ValueError("targets: give at least one of cpu_percent, memory_percent, requests_per_second")
        return self


class Behaviour(Contract):
    scale_up_window_seconds: float = Field(default=0, ge=0, le=3600)
    scale_down_window_seconds: float = Field(default=300, ge=0, le=3600)
    period_seconds: float = Field(default=15, gt=0, le=1800, description="the period the steps below are per")
    scale_up_max_replicas: int = Field(default=4, ge=1, description="added per period (or the percent)")
    scale_up_max_percent: float = Field(default=100, gt=0, description="added per period (or the replicas)")
    scale_down_max_percent: float = Field(default=100, gt=0, le=100, description="removed per period")


class AutoscalingPolicy(Contract):
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    targets: Targets
    behaviour: Behaviour = Field(default_factory=Behaviour)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingPolicy:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas: must be at least min_replicas ({self.min_replicas}), got {self.max_replicas}"
            )
        return self


class ReplicaUsage(Contract):
    """One replica as Prometheus saw it: ready (healthy, serving), and its use of what it reserves
    (1.0 = all of it); None where its metric is missing."""

    replica: str
    ready: bool = True
    cpu: float | None = None
    memory: float | None = None


class Observation(Contract):
    current: int = Field(ge=0, description="replicas the service runs now")
    replicas: list[ReplicaUsage] = Field(default_factory=list)
    requests_per_second: float | None = Field(default=None, ge=0, description="the service's, in total")


@dataclass(frozen=True)
class Recommendation:
    at: datetime
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    at: datetime
    before: int
    after: int


@dataclass(frozen=True)
class History:
    """What earlier decisions recommended, and the scales made, within the windows and the period."""

    recommendations: Sequence[Recommendation] = ()
    scales: Sequence[ScaleEvent] = ()


@dataclass(frozen=True)
class Proposal:
    metric: str  # "cpu", "memory", "requests_per_second"
    value: float  # the average per ready replica as the ratio saw it (a share, or requests/s)
    target: float
    replicas: int
    note: str = ""


@dataclass(frozen=True)
class Decision:
    current: int
    desired: int
    recommendation: int  # before the behaviour: what the metrics ask
    proposals: list[Proposal] = field(default_factory=list)
    reason: str = ""

    @property
    def changes(self) -> bool:
        return self.desired != self.current


def decide(policy: AutoscalingPolicy, seen: Observation, history: History, now: datetime) -> Decision:
    current = seen.current
    if current == 0:
        # Scaled to zero by hand: autoscaling stays out of it, as the HPA does.
        return Decision(0, 0, 0, reason="the service runs no replica: autoscaling waits for one")
    proposals = _proposals(policy.targets, seen)
    if not proposals:
        recommendation = current
        why = "no metric yet: keeping the replicas"
    else:
        best = max(proposals, key=lambda p: p.replicas)
        recommendation = best.replicas
        why = f"{best.metric} {_shown(best)} for a target of {_target(best)}"
    desired, limit = _behave(policy, current, recommendation, history, now)
    if desired == current:
        reason = f"{why}: stays at {current}" + (f" ({limit})" if limit else "")
    else:
        reason = f"{why}: {current} → {desired}" + (f" ({limit})" if limit else "")
    return Decision(current, desired, recommendation, proposals, reason)


def _proposals(targets: Targets, seen: Observation) -> list[Proposal]:
    proposals = []
    for metric, target in (("cpu", targets.cpu_percent), ("memory", targets.memory_percent)):
        if target is None:
            continue
        values = {u.replica: (getattr(u, metric), u.ready) for u in seen.replicas}
        proposal = _resource(metric, values, target / 100, seen.current)
        if proposal is not None:
            proposals.append(proposal)
    if targets.requests_per_second is not None and seen.requests_per_second is not None:
        ready = sum(1 for u in seen.replicas if u.ready) if seen.replicas else seen.current
        proposals.append(
            _per_replica_rate(seen.requests_per_second, targets.requests_per_second, ready, seen.current)
        )
    return proposals


def _resource(
    metric: str, values: dict[str, tuple[float | None, bool]], target: float, current: int
) -> Proposal | None:
    """The HPA's replica calculator for a resource utilization target."""
    measured = [value for value, ready in values.values() if ready and value is not None]
    missing = sum(1 for value, ready in values.values() if ready and value is None)
    unready = sum(1 for _, ready in values.values() if not ready)
    if not measured:
        return None
    ratio = (sum(measured) / len(measured)) / target
    average = sum(measured) / len(measured)
    if not missing and not unready:
        if abs(ratio - 1) <= TOLERANCE:
            return Proposal(metric, average, target, current, "within tolerance")
        return Proposal(metric, average, target, math.ceil(ratio * len(measured)))
    counted = list(measured)
    if ratio < 1:
        counted += [target] * missing  # scaling down: a replica without metrics is at the target
    else:
        counted += [0.0] * (missing + unready)  # scaling up: starting or unmeasured replicas use nothing
    new_ratio = (sum(counted) / len(counted)) / target
    if abs(new_ratio - 1) <= TOLERANCE or (ratio < 1) != (new_ratio < 1):
        return Proposal(metric, average, target, current, "not ready or unmeasured replicas hold it")
    new = math.ceil(new_ratio * len(counted))
    if (new_ratio < 1 and new > current) or (new_ratio > 1 and new < current):
        return Proposal(metric, average, target, current, "not ready or unmeasured replicas hold it")
    return Proposal(metric, average, target, new)


def _per_replica_rate(total: float, target: float, ready: int, current: int) -> Proposal:
    """The HPA's calculator for an average-value target on a service-wide metric."""
    metric = "requests_per_second"
    if ready == 0:
        return Proposal(metric, 0.0, target, current, "no ready replica")
    average = total / ready
    if abs(average / target - 1) <= TOLERANCE:
        return Proposal(metric, average, target, current, "within tolerance")
    return Proposal(metric, average, target, math.ceil(total / target))


def _behave(
    policy: AutoscalingPolicy, current: int, recommendation: int, history: History, now: datetime
) -> tuple[int, str]:
    behaviour = policy.behaviour
    up_since = now - timedelta(seconds=behaviour.scale_up_window_seconds)
    down_since = now - timedelta(seconds=behaviour.scale_down_window_seconds)
    lowest, highest = recommendation, recommendation
    for earlier in history.recommendations:
        if earlier.at > up_since:
            lowest = min(lowest, earlier.replicas)
        if earlier.at > down_since:
            highest = max(highest, earlier.replicas)
    stabilized, note = current, ""
    if stabilized < lowest:
        stabilized = lowest
    if stabilized > highest:
        stabilized = highest
    if stabilized != recommendation:
        note = "stabilization window"

    period_since = now - timedelta(seconds=behaviour.period_seconds)
    added = sum(max(0, s.after - s.before) for s in history.scales if s.at > period_since)
    removed = sum(max(0, s.before - s.after) for s in history.scales if s.at > period_since)
    desired = stabilized
    if desired > current:
        start = current - added
        up_limit = max(
            start + behaviour.scale_up_max_replicas,
            math.ceil(start * (1 + behaviour.scale_up_max_percent / 100)),
        )
        if desired > up_limit:
            desired, note = max(current, up_limit), f"at most {up_limit} this period"
    elif desired < current:
        start = current + removed
        down_limit = math.ceil(start * (1 - behaviour.scale_down_max_percent / 100))
        if desired < down_limit:
            desired, note = min(current, down_limit), f"at least {down_limit} this period"
    if desired > policy.max_replicas:
        desired, note = policy.max_replicas, f"max_replicas {policy.max_replicas}"
    if desired < policy.min_replicas:
        desired, note = policy.min_replicas, f"min_replicas {policy.min_replicas}"
    return desired, note


def _shown(proposal: Proposal) -> str:
    if proposal.metric == "requests_per_second":
        return f"{proposal.value:.1f}/s per replica"
    return f"{proposal.value * 100:.0f}%"


def _target(proposal: Proposal) -> str:
    if proposal.metric == "requests_per_second":
        return f"{proposal.target:g}/s"
    return f"{proposal.target * 100:g}%"
