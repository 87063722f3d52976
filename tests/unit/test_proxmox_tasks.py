"""Task status: running, succeeded (OK or WARNINGS: n) or failed with PVE's message; the log's error line."""

from __future__ import annotations

from typing import Any

import pytest

from core.proxmox.tasks import TaskPhase, TaskState, failure_message, interpret_task_status, task_log_error


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param({"status": "running"}, TaskState(phase=TaskPhase.RUNNING), id="running"),
        pytest.param(
            {"status": "running", "exitstatus": "OK"},
            TaskState(phase=TaskPhase.RUNNING),
            id="running-ignores-exitstatus",
        ),
        pytest.param(
            {"status": "stopped", "exitstatus": "OK"},
            TaskState(phase=TaskPhase.SUCCEEDED, exitstatus="OK"),
            id="ok",
        ),
        pytest.param(
            {"status": "stopped", "exitstatus": "WARNINGS: 3"},
            TaskState(phase=TaskPhase.SUCCEEDED, exitstatus="WARNINGS: 3", warnings=3),
            id="warnings",
        ),
        pytest.param(
            {"status": "stopped", "exitstatus": "CT is locked (disk)"},
            TaskState(
                phase=TaskPhase.FAILED, exitstatus="CT is locked (disk)", message="CT is locked (disk)"
            ),
            id="error-text",
        ),
        pytest.param(
            {"status": "stopped", "exitstatus": "WARNINGS: many"},
            TaskState(phase=TaskPhase.FAILED, exitstatus="WARNINGS: many", message="WARNINGS: many"),
            id="malformed-warnings-is-failure",
        ),
        pytest.param(
            {"status": "stopped", "exitstatus": "unexpected status"},
            TaskState(phase=TaskPhase.FAILED, exitstatus="unexpected status", message="unexpected status"),
            id="unexpected-status",
        ),
        pytest.param(
            {"status": "stopped"},
            TaskState(phase=TaskPhase.FAILED, message="the task stopped without an exit status"),
            id="no-exitstatus",
        ),
        pytest.param(
            {"status": "stopped", "exitstatus": "ok"},
            TaskState(phase=TaskPhase.FAILED, exitstatus="ok", message="ok"),
            id="ok-is-case-sensitive",
        ),
    ],
)
def test_interpret(status: dict[str, Any], expected: TaskState) -> None:
    state = interpret_task_status(status)
    assert state == expected
    assert state.done is (expected.phase is not TaskPhase.RUNNING)


def test_not_a_status() -> None:
    with pytest.raises(ValueError, match="running or stopped"):
        interpret_task_status({"status": "queued"})


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            [{"n": 1, "t": "create full clone of drive scsi0"}, {"n": 2, "t": "TASK OK"}], None, id="ok"
        ),
        pytest.param(
            [
                {"n": 1, "t": "starting"},
                {
                    "n": 2,
                    "t": "TASK ERROR: can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout",
                },
            ],
            "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout",
            id="error-line",
        ),
        pytest.param(
            [{"n": 2, "t": "TASK ERROR: second"}, {"n": 1, "t": "TASK ERROR: first"}],
            "second",
            id="last-by-line-number",
        ),
        pytest.param([], None, id="empty"),
        pytest.param([{"n": 1, "t": "TASK WARNINGS: 1"}], None, id="warnings"),
    ],
)
def test_task_log_error(lines: list[dict[str, Any]], expected: str | None) -> None:
    assert task_log_error(lines) == expected


def test_failure_message_prefers_the_log() -> None:
    state = interpret_task_status({"status": "stopped", "exitstatus": "clone failed"})
    log = [{"n": 1, "t": "TASK ERROR: clone failed: storage 'fast' is not online"}]
    assert failure_message(state, log) == "clone failed: storage 'fast' is not online"
    assert failure_message(state, []) == "clone failed"
