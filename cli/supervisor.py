"""Runs the platform's processes as supervised children: start in order, wait until ready,
stop in reverse order. Children die with the supervisor (PR_SET_PDEATHSIG), so nothing is left."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessSpec:
    """One child process: what runs, and how to tell it is ready (an HTTP URL or a TCP address)."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    ready_tcp: tuple[str, int] | None = None
    ready_path: Path | None = None
    ready_timeout: float = 60.0
    stop_timeout: float = 15.0
    restart: bool = False  # restarted when it dies (Dockyard's own stateless processes)


class ProcessFailed(Exception):
    pass


def _die_with_parent() -> None:
    os.setpgrp()  # our own process group: a terminal's Ctrl-C reaches only the supervisor
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, log_dir: Path, run_dir: Path) -> None:
        self.log_dir = log_dir
        self.run_dir = run_dir
        self.children: list[tuple[ProcessSpec, subprocess.Popen[bytes]]] = []
        self.restarts: dict[str, int] = {}

    def start(self, spec: ProcessSpec) -> None:
        self.children.append((spec, self._spawn(spec)))
        self._wait_ready(spec, self.children[-1][1], self.log_dir / f"{spec.name}.log")

    def _spawn(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                spec.argv,
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        (self.run_dir / f"{spec.name}.pid").write_text(str(process.pid))
        return process

    def _wait_ready(self, spec: ProcessSpec, process: subprocess.Popen[bytes], log_path: Path) -> None:
        deadline = time.monotonic() + spec.ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
                raise ProcessFailed(
                    f"{spec.name} exited with code {process.returncode} while starting; "
                    f"last lines of {log_path}:\n" + "\n".join(tail)
                )
            if _is_ready(spec):
                return
            time.sleep(0.1)
        raise ProcessFailed(f"{spec.name} not ready within {spec.ready_timeout:g}s; see {log_path}")

    def check(self) -> list[tuple[str, int]]:
        """Restart restartable children that died; return the others that died (name, exit code)."""
        failed = []
        for index, (spec, process) in enumerate(self.children):
            if process.poll() is None:
                continue
            if spec.restart:
                self.restarts[spec.name] = self.restarts.get(spec.name, 0) + 1
                self.children[index] = (spec, self._spawn(spec))
            else:
                failed.append((spec.name, process.returncode))
        return failed

    def stop_all(self) -> None:
        for spec, process in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(spec.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.children.clear()


def _is_ready(spec: ProcessSpec) -> bool:
    if spec.ready_path is not None and not spec.ready_path.exists():
        return False
    if spec.ready_tcp is not None:
        try:
            with socket.create_connection(spec.ready_tcp, timeout=0.5):
                pass
        except OSError:
            return False
    if spec.ready_url is not None:
        try:
            with urllib.request.urlopen(spec.ready_url, timeout=1):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code < 500  # e.g. the registry answers 401 when it is up
        except (OSError, ValueError):
            return False
    return True
