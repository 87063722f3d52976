"""core/restarts.py: how long the supervisor waits before starting a dead child again, and what it says."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.restarts import RestartPolicy, Run, describe_exit, exit_line, restart_after

POLICY = RestartPolicy(initial_delay_seconds=0.5, max_delay_seconds=30, factor=2, stable_after_seconds=60)


@pytest.mark.parametrize(
    ("crashes_before", "uptime", "delay", "crashes"),
    [
        pytest.param(0, 1, 0.5, 1, id="first crash: the initial delay"),
        pytest.param(1, 1, 1, 2, id="second in a row: doubled"),
        pytest.param(2, 1, 2, 3, id="third in a row: doubled again"),
        pytest.param(6, 1, 30, 7, id="seventh in a row: 32s capped at 30s"),
        pytest.param(500, 0, 30, 501, id="days of crashing: still capped, no overflow"),
        pytest.param(5, 59.9, 16, 6, id="up just under stable_after: still in a row"),
        pytest.param(5, 60, 0.5, 1, id="up for stable_after: the backoff starts over"),
        pytest.param(0, 3600, 0.5, 1, id="a crash a day restarts at once"),
    ],
)
def test_restart_delay(crashes_before: int, uptime: float, delay: float, crashes: int) -> None:
    restart = restart_after(POLICY, Run(started_at=1000, crashes_before=crashes_before), 1000 + uptime)
    assert (restart.delay_seconds, restart.crashes) == (delay, crashes)


def test_a_crash_loop_follows_the_doubling_sequence() -> None:
    run, delays, now = Run(started_at=0), [], 0.0
    for _ in range(9):
        now += 0.2  # dies 0.2 s after each start
        restart = restart_after(POLICY, run, now)
        delays.append(restart.delay_seconds)
        now += restart.delay_seconds
        run = Run(started_at=now, crashes_before=restart.crashes)
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


@given(
    crashes_before=st.integers(min_value=0, max_value=10_000),
    uptime=st.floats(min_value=0, max_value=1e6),
)
def test_the_delay_stays_within_the_policy(crashes_before: int, uptime: float) -> None:
    restart = restart_after(POLICY, Run(started_at=0, crashes_before=crashes_before), uptime)
    assert POLICY.initial_delay_seconds <= restart.delay_seconds <= POLICY.max_delay_seconds
    assert restart.crashes >= 1


@pytest.mark.parametrize(
    "fields",
    [
        {"initial_delay_seconds": 0},
        {"initial_delay_seconds": 40, "max_delay_seconds": 30},
        {"factor": 0.5},
        {"stable_after_seconds": 0},
    ],
    ids=["no initial delay", "initial above max", "shrinking factor", "never stable"],
)
def test_a_policy_that_would_spin_or_never_reset_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RestartPolicy(**fields)


@pytest.mark.parametrize(
    ("returncode", "words"),
    [
        (0, "exit code 0"),
        (1, "exit code 1"),
        (-9, "signal 9 (SIGKILL)"),
        (-15, "signal 15 (SIGTERM)"),
        (-200, "signal 200 (unknown signal)"),
    ],
)
def test_describe_exit(returncode: int, words: str) -> None:
    assert describe_exit(returncode) == words


def test_the_exit_line_names_the_child_how_it_died_and_the_delay() -> None:
    restart = restart_after(POLICY, Run(started_at=0, crashes_before=1), 12.34)
    assert exit_line("temporal", 4321, -9, 12.34, restart) == (
        "temporal (pid 4321) died: signal 9 (SIGKILL) after 12.3s up; restarting in 1s (crash 2 in a row)"
    )
