"""Runs the platform's processes as supervised children: start in order, wait until ready, restart any that
dies (with backoff: core/restarts.py), stop in reverse order. A crash of one child never stops the others.
Children die with the supervisor (PR_SET_PDEATHSIG), so nothing is left.

A child may listen on sockets the supervisor holds (systemd's socket activation: LISTEN_FDS, LISTEN_PID,
LISTEN_FDNAMES, the sockets from fd 3): while it restarts, connections wait in the socket's backlog instead
of being refused. Traefik's entrypoints are passed this way."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core.restarts import RestartPolicy, Run, exit_line, restart_after

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
    sockets: tuple[Listen, ...] = ()
    restart_policy: RestartPolicy | None = None  # the supervisor's when None


@dataclass(frozen=True)
class Listen:
    """A TCP socket the supervisor listens on and passes to the child, under `name` (LISTEN_FDNAMES)."""

    name: str
    host: str
    port: int


class ProcessFailed(Exception):
    pass


@dataclass
class _Child:
    spec: ProcessSpec
    process: subprocess.Popen[bytes] | None
    run: Run
    ready: bool = False
    restart_at: float | None = None  # set while it waits out its backoff
    down_since: float | None = None  # when it last died, until it is ready again


_FIRST_LISTEN_FD = 3  # SD_LISTEN_FDS_START
# Sets LISTEN_PID to the PID the program will have: only known in the child, and kept by `exec`.
_ACTIVATE = 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"'


def _die_with_parent() -> None:
    os.setpgrp()  # our own process group: a terminal's Ctrl-C reaches only the supervisor
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def activation_command(spec: ProcessSpec) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that hand `spec.sockets` to the program (fds from 3, in order)."""
    if not spec.sockets:
        return spec.argv, spec.env
    env = {
        **spec.env,
        "LISTEN_FDS": str(len(spec.sockets)),
        "LISTEN_FDNAMES": ":".join(listen.name for listen in spec.sockets),
    }
    return ["/bin/sh", "-c", _ACTIVATE, spec.name, *spec.argv], env


def _move_to_listen_fds(fds: list[int]) -> Callable[[], None]:
    def prepare_child() -> None:
        _die_with_parent()
        # Copied above any fd in use first, so that placing one at 3, 4, ... never overwrites another.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in fds]
        for index, fd in enumerate(high):
            os.dup2(fd, _FIRST_LISTEN_FD + index)  # inheritable
            os.close(fd)

    return prepare_child


def _listen(listen: Listen) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in listen.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        raise ProcessFailed(f"cannot listen on {listen.host}:{listen.port} ({listen.name}): {exc}") from None
    sock.listen(1024)
    return sock


def _stderr(line: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {line}", file=sys.stderr, flush=True)


class Supervisor:
    """Call `start` for each child in order, then `check` every tick (from the thread that started them:
    PR_SET_PDEATHSIG fires when the *thread* that forked a child ends)."""

    def __init__(
        self,
        log_dir: Path,
        run_dir: Path,
        *,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] = _stderr,
    ) -> None:
        self.log_dir = log_dir
        self.run_dir = run_dir
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.log = log
        self.children: list[_Child] = []
        self.restarts: dict[str, int] = {}
        self.sockets: dict[str, list[socket.socket]] = {}  # per child, held for the supervisor's life

    def start(self, spec: ProcessSpec) -> None:
        """Start a child and wait until it is ready; a child that exits while starting the first time is a
        configuration problem, not a crash: raises ProcessFailed with its last log lines."""
        self.sockets[spec.name] = [_listen(listen) for listen in spec.sockets]
        child = _Child(spec, self._spawn(spec), Run(self.clock()))
        self.children.append(child)
        self._wait_ready(child)

    def pid(self, name: str) -> int | None:
        for child in self.children:
            if child.spec.name == name and child.process is not None:
                return child.process.pid
        return None

    def _log_path(self, spec: ProcessSpec) -> Path:
        return self.log_dir / f"{spec.name}.log"

    def _spawn(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv, env = activation_command(spec)
        fds = [sock.fileno() for sock in self.sockets.get(spec.name, [])]
        with self._log_path(spec).open("ab") as log:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_move_to_listen_fds(fds) if fds else _die_with_parent,
                # Python's own fds are not inheritable (PEP 446): only the ones placed at 3... pass.
                close_fds=not fds,
            )
        # Replaced in one step: whoever reads it (tests, an operator's kill) never sees it empty.
        pid_file = self.run_dir / f"{spec.name}.pid"
        partial = pid_file.with_suffix(".pid.new")
        partial.write_text(str(process.pid))
        partial.replace(pid_file)
        return process

    def _wait_ready(self, child: _Child) -> None:
        spec, process = child.spec, child.process
        assert process is not None
        deadline = time.monotonic() + spec.ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = self._log_path(spec).read_text(errors="replace").strip().splitlines()[-15:]
                raise ProcessFailed(
                    f"{spec.name} exited with code {process.returncode} while starting; "
                    f"last lines of {self._log_path(spec)}:\n" + "\n".join(tail)
                )
            if _is_ready(spec):
                child.ready = True
                return
            self.check(skip=child)  # the children started before keep being supervised meanwhile
            time.sleep(0.1)
        log_path = self._log_path(spec)
        raise ProcessFailed(f"{spec.name} not ready within {spec.ready_timeout:g}s; see {log_path}")

    def check(self, skip: _Child | None = None) -> None:
        """One round: note the children that died and when each may start again, start those whose backoff
        is over, and say when a restarted one answers again."""
        for child in self.children:
            if child is skip:
                continue
            now = self.clock()
            if child.process is not None and child.process.poll() is not None:
                self._died(child, child.process, now)
            elif child.process is None and child.restart_at is not None and now >= child.restart_at:
                self._restart(child, now)
            elif child.process is not None and not child.ready and _is_ready(child.spec):
                self._ready_again(child, child.process, now)

    def _ready_again(self, child: _Child, process: subprocess.Popen[bytes], now: float) -> None:
        child.ready = True
        down = now - child.down_since if child.down_since is not None else 0.0
        child.down_since = None
        self.log(f"{child.spec.name} (pid {process.pid}) is ready again, {down:.1f}s after it died")

    def _died(self, child: _Child, process: subprocess.Popen[bytes], now: float) -> None:
        restart = restart_after(child.spec.restart_policy or self.policy, child.run, now)
        uptime = now - child.run.started_at
        line = exit_line(child.spec.name, process.pid, process.returncode, uptime, restart)
        self.log(line)
        with self._log_path(child.spec).open("a") as log:
            log.write(f"dockyard up: {line}\n")
        child.process = None
        child.ready = False
        child.restart_at = now + restart.delay_seconds
        child.run = Run(child.run.started_at, restart.crashes)
        if child.down_since is None:
            child.down_since = now

    def _restart(self, child: _Child, now: float) -> None:
        try:
            child.process = self._spawn(child.spec)
        except OSError as exc:  # e.g. its binary was removed: try again later, as after a crash
            policy = child.spec.restart_policy or self.policy
            restart = restart_after(policy, Run(now, child.run.crashes_before), now)
            self.log(f"{child.spec.name} could not start: {exc}; trying again in {restart.delay_seconds:g}s")
            child.run = Run(now, restart.crashes)
            child.restart_at = now + restart.delay_seconds
            return
        child.restart_at = None
        child.run = Run(now, child.run.crashes_before)
        self.restarts[child.spec.name] = self.restarts.get(child.spec.name, 0) + 1
        self.log(f"{child.spec.name} restarted (pid {child.process.pid})")

    def stop_all(self) -> None:
        """Stop every child this supervisor started, newest first: SIGTERM, then SIGKILL after its
        stop_timeout. Only these PIDs are signalled."""
        for child in reversed(self.children):
            process = child.process
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(child.spec.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.children.clear()
        for sockets in self.sockets.values():
            for sock in sockets:
                sock.close()
        self.sockets.clear()


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
