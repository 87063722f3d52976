"""Worker tasks, as PVE's `fork_worker` runs them: a UPID at once, the work in the background.

    UPID:pve1:0001A2B3:0004C5D6:6789ABCD:vzclone:9000:root@pam!dockyard:

Each task runs its work function in a thread; the work sleeps through `TaskRun.sleep` (scaled by the
task speed and any slow-task fault), logs lines, may warn, and fails by raising `TaskFailure`. The
task then ends `stopped` with exitstatus `OK`, `WARNINGS: N` or the error, and its log with
`TASK OK`, `TASK WARNINGS: N` or `TASK ERROR: <message>`. For `hidden_seconds` after it starts, a
task is not found yet (`400 no such task`), as a UPID whose task file is not written yet.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra.proxmox.sim.base import parameter_error

UPID_RE = re.compile(
    r"UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-F]{8}):([0-9A-F]{8,9}):([0-9A-F]{8}):"
    r"([^:\s]+):([^:\s]*):([^:\s]+):"
)


class TaskFailure(Exception):
    """The task ends with `TASK ERROR: <message>`."""


@dataclass
class Task:
    upid: str
    node: str
    type: str
    id: str
    user: str
    pid: int
    pstart: int
    starttime: int
    visible_at: float
    lines: list[str] = field(default_factory=list)
    status: str = "running"
    exitstatus: str | None = None
    endtime: int | None = None
    warnings: int = 0
    aborted: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def status_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": self.user,
            "status": self.status,
        }
        if self.exitstatus is not None:
            view["exitstatus"] = self.exitstatus
        return view

    def list_view(self) -> dict[str, Any]:
        view = {
            key: value for key, value in self.status_view().items() if key not in ("status", "exitstatus")
        }
        if self.status == "stopped":
            view |= {"status": self.exitstatus, "endtime": self.endtime}
        return view


class TaskRun:
    """What a work function gets: its task, a scaled clock and the log."""

    def __init__(self, task: Task, scale: Callable[[str], float]) -> None:
        self.task = task
        self._scale = scale

    def log(self, line: str) -> None:
        self.task.lines.append(line)

    def warn(self, line: str) -> None:
        self.task.warnings += 1
        self.log(f"WARN: {line}")

    def sleep(self, seconds: float) -> None:
        if self.task.aborted.wait(seconds * self._scale(self.task.type)):
            raise TaskFailure("received interrupt")


Work = Callable[[TaskRun], None]


class Tasks:
    def __init__(self, scale: Callable[[str], float], hidden_seconds: float) -> None:
        self.scale = scale
        self.hidden_seconds = hidden_seconds
        self._tasks: dict[str, Task] = {}
        self._pids = itertools.count(0x1A2B3 + int(time.time()) % 0x10000)
        self._lock = threading.Lock()

    def start(self, node: str, kind: str, object_id: str, user: str, work: Work) -> str:
        with self._lock:
            pid = next(self._pids)
            now = time.time()
            pstart = int(time.monotonic() * 100) & 0xFFFFFFFF
            upid = f"UPID:{node}:{pid:08X}:{pstart:08X}:{int(now):08X}:{kind}:{object_id}:{user}:"
            task = Task(upid, node, kind, object_id, user, pid, pstart, int(now), now + self.hidden_seconds)
            self._tasks[upid] = task
        threading.Thread(
            target=self._run, args=(task, work), name=f"task-{kind}-{object_id}", daemon=True
        ).start()
        return upid

    def _run(self, task: Task, work: Work) -> None:
        try:
            work(TaskRun(task, self.scale))
        except TaskFailure as exc:
            self._finish(task, str(exc))
        except Exception as exc:  # a bug of the simulator still ends the task, visibly
            self._finish(task, f"simulator error: {exc!r}")
        else:
            self._finish(task, None)

    def _finish(self, task: Task, error: str | None) -> None:
        if error is not None:
            task.lines.append(f"TASK ERROR: {error}")
            task.exitstatus = error
        elif task.warnings:
            task.lines.append(f"TASK WARNINGS: {task.warnings}")
            task.exitstatus = f"WARNINGS: {task.warnings}"
        else:
            task.lines.append("TASK OK")
            task.exitstatus = "OK"
        task.endtime = int(time.time())
        task.status = "stopped"
        task.done.set()

    def get(self, node: str, upid: str) -> Task:
        if UPID_RE.fullmatch(upid) is None:
            raise parameter_error({"upid": "unable to parse worker upid"})
        task = self._tasks.get(upid)
        if task is None or task.node != node or time.time() < task.visible_at:
            raise parameter_error({"upid": "no such task"})
        return task

    def listed(self, node: str) -> list[Task]:
        now = time.time()
        found = [task for task in self._tasks.values() if task.node == node and now >= task.visible_at]
        return sorted(found, key=lambda task: task.starttime, reverse=True)

    def wait(self, upid: str, timeout: float) -> Task:
        task = self._tasks[upid]
        task.done.wait(timeout)
        return task

    def running(self) -> list[Task]:
        return [task for task in self._tasks.values() if task.status == "running"]
