"""When a process that `dockyard up` supervises dies, the pure part: how long to wait before starting it
again, and the line that says so.

    restart_after(policy, run, exited_at) → Restart(delay_seconds, crashes)

A child's life, as the supervisor sees it:

    starting ──ready──▶ running ──exits──▶ waiting (delay) ──▶ starting ...
        └──────────────exits──────────────────▲

The delay doubles with each crash in a row (0.5 s, 1 s, 2 s, ... up to 30 s) so a child that cannot start
(its port taken, its database gone) does not spin, and goes back to the first step once a run has lasted
`stable_after_seconds`: a process that crashes once a day restarts at once every time.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    initial_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    factor: float = 2.0
    stable_after_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_delay_seconds <= self.max_delay_seconds:
            raise ValueError("need 0 < initial_delay_seconds <= max_delay_seconds")
        if self.factor < 1 or self.stable_after_seconds <= 0:
            raise ValueError("need factor >= 1 and stable_after_seconds > 0")


@dataclass(frozen=True)
class Run:
    """One run of a child: when it started, and how many crashes in a row came before it."""

    started_at: float
    crashes_before: int = 0


@dataclass(frozen=True)
class Restart:
    delay_seconds: float
    crashes: int  # in a row, this one included: the next run's `crashes_before`


def restart_after(policy: RestartPolicy, run: Run, exited_at: float) -> Restart:
    stable = exited_at - run.started_at >= policy.stable_after_seconds
    crashes = 1 if stable else run.crashes_before + 1
    # Capped before raising to a power: a child failing for days must not overflow the float.
    exponent = min(crashes - 1, 64)
    delay = min(policy.max_delay_seconds, policy.initial_delay_seconds * policy.factor**exponent)
    return Restart(delay_seconds=delay, crashes=crashes)


def describe_exit(returncode: int) -> str:
    """Popen's return code in words: a negative one is the signal that killed the process."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown signal"
    return f"signal {-returncode} ({name})"


def exit_line(name: str, pid: int, returncode: int, uptime_seconds: float, restart: Restart) -> str:
    return (
        f"{name} (pid {pid}) died: {describe_exit(returncode)} after {uptime_seconds:.1f}s up; "
        f"restarting in {restart.delay_seconds:g}s (crash {restart.crashes} in a row)"
    )
