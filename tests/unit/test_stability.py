"""When a new replica counts as healthy, crash-looping or unstable (core/stability.py), and how the agent
reads Docker's restart count and exit code (agent/containers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.containers import replica_status
from core.contracts import ReplicaState, ReplicaStatus
from core.stability import HealthPolicy, Streak, Verdict, Watch, crash_reason, judge_health, judge_stability

TCP = HealthPolicy(crash_loop_restarts=3, stable_seconds=2.0, stable_probes=3)
HTTP = HealthPolicy(crash_loop_restarts=3)


def status(
    state: ReplicaState = ReplicaState.RUNNING,
    healthy: bool = True,
    restarts: int = 0,
    exit_code: int | None = None,
    message: str | None = None,
) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id="dep-0",
        state=state,
        healthy=healthy,
        restart_count=restarts,
        exit_code=exit_code,
        message=message,
    )


def run(policy: HealthPolicy, probes: list[tuple[float, ReplicaStatus]]) -> list[Verdict]:
    streak, verdicts = Streak(), []
    for at, seen in probes:
        streak, verdict = judge_health(streak, seen, at, policy)
        verdicts.append(verdict)
    return verdicts


@pytest.mark.parametrize(
    ("policy", "probes", "expected"),
    [
        (HTTP, [(0, status())], [Verdict.HEALTHY]),
        (HTTP, [(0, status(healthy=False)), (1, status())], [Verdict.PENDING, Verdict.HEALTHY]),
        (
            TCP,
            [(0, status()), (1, status()), (2.1, status())],
            [Verdict.PENDING, Verdict.PENDING, Verdict.HEALTHY],
        ),
        # accepts, dies, comes back on another restart count: the streak starts again
        (
            TCP,
            [
                (0, status()),
                (1, status(ReplicaState.RESTARTING, False, 1, 4)),
                (1.5, status(restarts=1)),
                (2.5, status(restarts=1)),
                (3.6, status(restarts=1)),
            ],
            [Verdict.PENDING, Verdict.PENDING, Verdict.PENDING, Verdict.PENDING, Verdict.HEALTHY],
        ),
        (TCP, [(0, status()), (1, status()), (2.5, status(restarts=1))], [Verdict.PENDING] * 3),
        (TCP, [(0, status(ReplicaState.RESTARTING, False, 3, 1))], [Verdict.CRASHED]),
        (HTTP, [(0, status(restarts=3))], [Verdict.CRASHED]),  # running now, but it restarted 3 times
        (HTTP, [(0, status(ReplicaState.EXITED, False, 0, 2))], [Verdict.CRASHED]),
        (TCP, [(0, status(ReplicaState.CREATED, False))], [Verdict.PENDING]),
    ],
    ids=[
        "http-once",
        "http-after-a-miss",
        "tcp-streak",
        "tcp-restart-resets",
        "tcp-restart-at-the-end",
        "crash-loop-restarting",
        "crash-loop-running",
        "exited",
        "created",
    ],
)
def test_judge_health(
    policy: HealthPolicy, probes: list[tuple[float, ReplicaStatus]], expected: list[Verdict]
) -> None:
    assert run(policy, probes) == expected


@pytest.mark.parametrize(
    ("watch", "seen", "problem"),
    [
        (Watch(0), status(), None),
        (Watch(1), status(restarts=1), None),
        (
            Watch(0),
            status(ReplicaState.RESTARTING, False, 1, 137),
            "it exited with code 137 and was restarted (1 restarts)",
        ),
        (Watch(0), status(restarts=2), "it exited and was restarted (2 restarts)"),
        (Watch(0), status(ReplicaState.EXITED, False, 0, 0, "exited with code 0"), None),
        (
            Watch(0, unhealthy_since=4.5),
            status(healthy=False, message="GET /healthz answered HTTP 500"),
            "its health probes failed for 5.5s: GET /healthz answered HTTP 500",
        ),
        (Watch(0, unhealthy_since=6.0), status(healthy=False), None),
        (Watch(0), status(healthy=False), None),
        (Watch(0), None, "its container disappeared"),
    ],
    ids=[
        "stable",
        "restarted-before-the-window",
        "restarted",
        "restarted-twice-unseen",
        "stopped-by-someone",
        "unhealthy-long-enough",
        "unhealthy-not-long-enough",
        "first-failed-probe",
        "gone",
    ],
)
def test_judge_stability(watch: Watch, seen: ReplicaStatus | None, problem: str | None) -> None:
    assert judge_stability(watch, seen, now=10.0, unhealthy_seconds=5.0)[1] == problem


def test_a_healthy_probe_ends_the_unhealthy_run_and_a_failed_one_starts_it() -> None:
    watch, _ = judge_stability(Watch(0, unhealthy_since=3.0), status(), now=10.0, unhealthy_seconds=5.0)
    assert watch == Watch(0)
    watch, _ = judge_stability(watch, status(healthy=False), now=11.0, unhealthy_seconds=5.0)
    assert watch == Watch(0, unhealthy_since=11.0)


@pytest.mark.parametrize(
    ("seen", "lines", "reason"),
    [
        (
            status(ReplicaState.RESTARTING, False, 3, 3),
            ["booting", "fatal: no DATABASE_URL", ""],
            "keeps exiting (exit code 3, restarted 3 times); "
            "last lines of its log: booting | fatal: no DATABASE_URL",
        ),
        (status(restarts=4), [], "keeps exiting (restarted 4 times); it wrote nothing to its log"),
        (
            status(ReplicaState.EXITED, False, 0, 1, "exited with code 1"),
            ["bye"],
            "exited with code 1; last lines of its log: bye",
        ),
    ],
    ids=["with-code", "code-unknown", "exited"],
)
def test_crash_reason(seen: ReplicaStatus, lines: list[str], reason: str) -> None:
    assert crash_reason(seen, lines) == reason


def inspect(
    status: str, exit_code: int, restarts: int, finished: str = "2026-12-07T08:00:00Z"
) -> dict[str, Any]:
    return {
        "Id": "c0ffee",
        "Name": "/dockyard-dep-0",
        "RestartCount": restarts,
        "State": {"Status": status, "ExitCode": exit_code, "FinishedAt": finished},
        "Config": {"Labels": {"dockyard.replica": "dep-0", "dockyard.port": "8080"}, "Image": "img"},
        "NetworkSettings": {"Ports": {}},
    }


@pytest.mark.parametrize(
    ("attrs", "restarts", "exit_code"),
    [
        (inspect("running", 0, 0, "0001-01-01T00:00:00Z"), 0, None),
        (inspect("restarting", 3, 2), 2, 3),
        (inspect("running", 0, 2), 2, None),  # Docker reset ExitCode when it started it again
        (inspect("exited", 137, 0), 0, 137),
        (inspect("created", 0, 0, "0001-01-01T00:00:00Z"), 0, None),
    ],
    ids=["fresh", "restarting", "running-again", "exited", "created"],
)
def test_replica_status_reads_restarts_and_exit_code(
    attrs: dict[str, Any], restarts: int, exit_code: int | None
) -> None:
    read = replica_status(attrs, "127.0.0.1")
    assert (read.restart_count, read.exit_code) == (restarts, exit_code)
