"""What a PVE task's status and log say: still running, succeeded (maybe with warnings), or failed and why.

`GET /nodes/<node>/tasks/<upid>/status` answers `{"status": "running" | "stopped", "exitstatus": ...}`. Once
stopped, `exitstatus` is `OK`, `WARNINGS: <n>` (the task did its job and logged warnings), or the error text
(anything else is a failure). The log (`.../log`, `[{"n": 1, "t": "line"}, ...]`) ends with `TASK OK`,
`TASK WARNINGS: <n>` or `TASK ERROR: <message>`. proxmoxer's `Tasks.blocking_status` is not used: it answers
None on timeout and does not raise on a failed task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from core.contracts import Contract

_WARNINGS = re.compile(r"^WARNINGS: (\d+)$")
TASK_ERROR_PREFIX = "TASK ERROR: "


class TaskPhase(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TaskState(Contract):
    phase: TaskPhase
    exitstatus: str | None = None
    warnings: int = 0
    message: str | None = None  # the failure, in PVE's words

    @property
    def done(self) -> bool:
        return self.phase is not TaskPhase.RUNNING


def interpret_task_status(status: Mapping[str, Any]) -> TaskState:
    """A task's state from its status answer. ValueError when the answer is not a task status."""
    phase = status.get("status")
    if phase == "running":
        return TaskState(phase=TaskPhase.RUNNING)
    if phase != "stopped":
        raise ValueError(f"task status must be running or stopped, got {phase!r}")
    exitstatus = status.get("exitstatus")
    if exitstatus == "OK":
        return TaskState(phase=TaskPhase.SUCCEEDED, exitstatus="OK")
    if isinstance(exitstatus, str) and (warned := _WARNINGS.match(exitstatus)):
        return TaskState(phase=TaskPhase.SUCCEEDED, exitstatus=exitstatus, warnings=int(warned[1]))
    message = str(exitstatus).strip() if exitstatus else "the task stopped without an exit status"
    return TaskState(phase=TaskPhase.FAILED, exitstatus=exitstatus or None, message=message)


def task_log_error(lines: Sequence[Mapping[str, Any]]) -> str | None:
    """The message of the log's last `TASK ERROR: <message>` line, or None when it has none."""
    for line in sorted(lines, key=lambda line: int(line.get("n", 0)), reverse=True):
        text = str(line.get("t", ""))
        if text.startswith(TASK_ERROR_PREFIX):
            return text[len(TASK_ERROR_PREFIX) :].strip()
    return None


def failure_message(state: TaskState, log_lines: Sequence[Mapping[str, Any]] = ()) -> str:
    """Why a failed task failed: the log's error line when it has one (the exit status is often cut
    short), else the exit status."""
    return task_log_error(log_lines) or state.message or "the task failed"
