"""The start command stops on SIGTERM, whether the app handles it or not, even as PID 1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from core.planner.shell import start_script

APPS = [
    pytest.param("sleep 30", 143, id="simple-command"),
    pytest.param("true && sleep 30", 143, id="and-list"),
    pytest.param("sleep 30 & sleep 30  # two processes", 143, id="background-and-comment"),
    pytest.param("trap 'exit 0' TERM; sleep 30 & wait", 0, id="app-exits-cleanly-on-term"),
]


def stop(argv: list[str], *, inner: bool = False) -> tuple[int, float]:
    """Start argv, SIGTERM the shell (with `inner`, the child of the `unshare` wrapper), time its exit."""
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        time.sleep(0.5)
        target = _child(process.pid) if inner else process.pid
        started = time.monotonic()
        os.kill(target, signal.SIGTERM)
        status = process.wait(timeout=5)
        return status, time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _child(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return int(children.read().split()[0])


@pytest.mark.parametrize(("app", "status"), APPS)
def test_term_stops_the_app(app: str, status: int) -> None:
    code, took = stop(["/bin/sh", "-c", start_script(app)])
    assert took < 2
    assert code in (status, -signal.SIGTERM)  # not PID 1 here: the shell itself may die of the forwarded TERM


def _can_be_pid_1() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setsid"):
        return False
    return subprocess.run(["unshare", "-fp", "--kill-child", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_be_pid_1(), reason="needs root and unshare to run a shell as PID 1")
@pytest.mark.parametrize(("app", "status"), APPS)
def test_term_stops_the_app_as_pid_1(app: str, status: int) -> None:
    code, took = stop(
        ["unshare", "-fp", "--kill-child", "setsid", "/bin/sh", "-c", start_script(app)], inner=True
    )
    assert took < 2
    assert code == status
