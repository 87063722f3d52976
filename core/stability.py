"""When a new replica counts as healthy, and when it is crash-looping: pure decisions over what the
agent reports, probe after probe (no I/O, the clock is passed in).

Health barrier (before the cut-over), per replica:

    probe ──▶ exited, or restarted `crash_loop_restarts` times ──▶ CRASHED (fail now, with why)
      │
      ├──▶ healthy, running, restart count unchanged ──▶ streak += 1
      │        streak spans `stable_seconds` and `stable_probes` probes ──▶ HEALTHY
      └──▶ anything else ──▶ streak = 0, PENDING

A process that accepts a connection and then dies (a gunicorn master binding $PORT while its workers
fail to boot) passes one TCP probe; it does not stay up, on the same restart count, over a streak.

Stability window (after the cut-over), per replica: any restart, any exit, or failing probes for
`unhealthy_seconds` without a healthy one ──▶ UNSTABLE (roll back); otherwise it is stable once the
window ends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from core.contracts import ReplicaState, ReplicaStatus


class Verdict(StrEnum):
    PENDING = "pending"
    HEALTHY = "healthy"
    CRASHED = "crashed"


@dataclass(frozen=True)
class HealthPolicy:
    crash_loop_restarts: int = 3
    stable_seconds: float = 0.0  # how long a healthy streak must span (0: one healthy probe is enough)
    stable_probes: int = 1


@dataclass(frozen=True)
class Streak:
    """A replica's run of healthy probes on one restart count: since when, how many."""

    started_at: float | None = None
    probes: int = 0
    restart_count: int = 0


def judge_health(
    streak: Streak, status: ReplicaStatus, now: float, policy: HealthPolicy
) -> tuple[Streak, Verdict]:
    """The streak after this probe, and what it says about the replica."""
    if status.state is ReplicaState.EXITED or status.restart_count >= policy.crash_loop_restarts:
        return Streak(), Verdict.CRASHED
    if not (status.healthy and status.state is ReplicaState.RUNNING):
        return Streak(), Verdict.PENDING
    if streak.started_at is None or streak.restart_count != status.restart_count:
        streak = Streak(started_at=now, probes=0, restart_count=status.restart_count)
    streak = replace(streak, probes=streak.probes + 1)
    assert streak.started_at is not None
    spanned = now - streak.started_at >= policy.stable_seconds
    if spanned and streak.probes >= policy.stable_probes:
        return streak, Verdict.HEALTHY
    return streak, Verdict.PENDING


def crash_reason(status: ReplicaStatus, log_lines: list[str]) -> str:
    """What the user is told of a replica that keeps exiting: how it exits and its last words."""
    if status.state is ReplicaState.EXITED:
        what = status.message or "exited"
    else:
        code = f"exit code {status.exit_code}, " if status.exit_code is not None else ""
        what = f"keeps exiting ({code}restarted {status.restart_count} times)"
    tail = " | ".join(line.strip() for line in log_lines if line.strip())
    return f"{what}; last lines of its log: {tail}" if tail else f"{what}; it wrote nothing to its log"


@dataclass(frozen=True)
class Watch:
    """A replica watched through the stability window: its restart count when the window opened, and
    since when its probes have failed without a healthy one between (None: the last probe passed)."""

    restart_count: int
    unhealthy_since: float | None = None


def judge_stability(
    watch: Watch, status: ReplicaStatus | None, now: float, unhealthy_seconds: float
) -> tuple[Watch, str | None]:
    """The watch after this probe, and why the replica is unstable (None while it is not). A restart
    counts at once; failing probes only once they have lasted `unhealthy_seconds` (one slow answer on a
    busy node is no crash); a replica stopped by someone not at all."""
    if status is None:
        return watch, "its container disappeared"
    if status.restart_count > watch.restart_count:
        code = f" with code {status.exit_code}" if status.exit_code is not None else ""
        restarts = status.restart_count - watch.restart_count
        return watch, f"it exited{code} and was restarted ({restarts} restarts)"
    if status.state is ReplicaState.EXITED:
        # Docker restarts a replica that crashes (its policy: unless-stopped), which shows as a restart
        # above. One that stays exited was stopped: `dockyard down`, `docker stop`, its engine shutting
        # down. That says nothing of the deploy; the fleet watch starts it again.
        return replace(watch, unhealthy_since=None), None
    if status.healthy and status.state is ReplicaState.RUNNING:
        return replace(watch, unhealthy_since=None), None
    since = watch.unhealthy_since if watch.unhealthy_since is not None else now
    watch = replace(watch, unhealthy_since=since)
    if now - since >= unhealthy_seconds:
        seen = f": {status.message}" if status.message else ""
        return watch, f"its health probes failed for {now - since:.1f}s{seen}"
    return watch, None
