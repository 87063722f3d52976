"""Runs the platform's processes as supervised children: start in order, wait until ready, restart any that
dies (with backoff: core/restarts.py), stop in reverse order. A crash of one child never stops the others.
Children die with the supervisor (PR_SET_PDEATHSIG), so nothing is left.

A child may listen on sockets the supervisor holds (systemd's socket activation: LISTEN_FDS, LISTEN_PID,
LISTEN_FDNAMES, the sockets from fd 3): while it restarts, connections wait in the socket's backlog instead
of being refused. Traefik's entrypoints are passed this way.

A child may run as an active + hot-standby pair (ProcessSpec.standby): two instances, each with its own copy
of the sockets (SO_REUSEPORT on the same addresses). A classic BPF program attached to each address's
reuseport group sends every new connection to the active instance's socket; when the active dies, the
supervisor steers to the standby once it serves (core/steering.py decides), closes its copies of the dead
instance's sockets and starts it again as the new standby. With net.ipv4.tcp_migrate_req=1 the connections
that reached the dead instance's socket in between move to the standby's when it closes."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cli.sockets import Listen, allow_migration, listen_on, move_to_listen_fds, steer_group
from core.restarts import RestartPolicy, Run, exit_line, restart_after
from core.steering import closed, listened, steer

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
    standby: Standby | None = None  # run as an active + hot-standby pair


@dataclass(frozen=True)
class Standby:
    """Each instance of a pair also gets a loopback socket of its own on a free port, under `private`
    (e.g. its API); it takes new connections only once `ready(private_port)` is true (e.g. it serves the
    routes the active serves). ready_url and ready_tcp are not asked: they reach the active one only."""

    private: str
    ready: Callable[[int], bool]


class ProcessFailed(Exception):
    pass


@dataclass
class _Child:
    spec: ProcessSpec
    process: subprocess.Popen[bytes] | None
    run: Run
    sockets: list[socket.socket] = field(default_factory=list)  # spec.sockets, in order
    pair: _Pair | None = None
    ready: bool = False
    restart_at: float | None = None  # set while it waits out its backoff
    down_since: float | None = None  # when it last died, until it is ready again


@dataclass
class _Pair:
    spec: ProcessSpec
    instances: list[_Child] = field(default_factory=list)
    target: _Child | None = None  # the instance new connections go to
    order: tuple[str, ...] = ()  # instance names in their sockets' reuseport groups, by index


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


def _prepare_child(fds: list[int]) -> Callable[[], None]:
    def prepare_child() -> None:
        _die_with_parent()
        move_to_listen_fds(fds)

    return prepare_child


def _listen(listen: Listen, *, reuseport: bool = False) -> socket.socket:
    try:
        return listen_on(listen, reuseport=reuseport)
    except OSError as exc:
        raise ProcessFailed(f"cannot listen on {listen.host}:{listen.port} ({listen.name}): {exc}") from None


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
        self.pairs: list[_Pair] = []
        self.restarts: dict[str, int] = {}

    def start(self, spec: ProcessSpec) -> None:
        """Start a child (both instances of a pair, one after the other) and wait until it is ready; a
        child that exits while starting the first time is a configuration problem, not a crash: raises
        ProcessFailed with its last log lines."""
        if spec.standby is None:
            self._launch(_Child(spec, None, Run(self.clock()), [_listen(listen) for listen in spec.sockets]))
            return
        allow_migration(self.log)
        pair = _Pair(spec)
        self.pairs.append(pair)
        for instance in ("a", "b"):
            private = Listen(spec.standby.private, "127.0.0.1", 0)
            instance_spec = replace(spec, name=f"{spec.name}.{instance}", sockets=(*spec.sockets, private))
            child = _Child(instance_spec, None, Run(self.clock()), pair=pair)
            pair.instances.append(child)
            self._open_sockets(child)
            self._launch(child)

    def pid(self, name: str) -> int | None:
        """The PID of the child `name`; of a pair's active instance."""
        for pair in self.pairs:
            if pair.spec.name == name:
                return _pid(pair.target)
        return next((_pid(child) for child in self.children if child.spec.name == name), None)

    def _launch(self, child: _Child) -> None:
        child.process = self._spawn(child)
        self.children.append(child)
        self._wait_ready(child)

    def _log_path(self, spec: ProcessSpec) -> Path:
        return self.log_dir / f"{spec.name}.log"

    def _spawn(self, child: _Child) -> subprocess.Popen[bytes]:
        spec = child.spec
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv, env = activation_command(spec)
        fds = [sock.fileno() for sock in child.sockets]
        with self._log_path(spec).open("ab") as log:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_prepare_child(fds) if fds else _die_with_parent,
                # Python's own fds are not inheritable (PEP 446): only the ones placed at 3... pass.
                close_fds=not fds,
            )
        self._write_pid(spec.name, process.pid)
        return process

    def _write_pid(self, name: str, pid: int) -> None:
        # Replaced in one step: whoever reads it (tests, an operator's kill) never sees it empty.
        pid_file = self.run_dir / f"{name}.pid"
        partial = pid_file.with_suffix(".pid.new")
        partial.write_text(str(pid))
        partial.replace(pid_file)

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
            if self._is_ready(child):
                child.ready = True
                if child.pair is not None:
                    self._steer(child.pair)
                return
            self.check(skip=child)  # the children started before keep being supervised meanwhile
            time.sleep(0.1)
        log_path = self._log_path(spec)
        raise ProcessFailed(f"{spec.name} not ready within {spec.ready_timeout:g}s; see {log_path}")

    def check(self, skip: _Child | None = None) -> None:
        """One round: note the children that died (all first: the active of a pair is replaced at once,
        whatever the readiness checks below take), start those whose backoff is over, and say when a
        restarted one answers again."""
        children = [child for child in self.children if child is not skip]
        for child in children:
            if child.process is not None and child.process.poll() is not None:
                self._died(child, child.process, self.clock())
        for child in children:
            now = self.clock()
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                self._restart(child, now)
            elif child.process is not None and not child.ready and self._is_ready(child):
                self._ready_again(child, child.process, now)

    def _is_ready(self, child: _Child) -> bool:
        standby = child.spec.standby
        if standby is not None:
            return standby.ready(child.sockets[-1].getsockname()[1])
        return _is_ready(child.spec)

    def _ready_again(self, child: _Child, process: subprocess.Popen[bytes], now: float) -> None:
        child.ready = True
        down = now - child.down_since if child.down_since is not None else 0.0
        child.down_since = None
        self.log(f"{child.spec.name} (pid {process.pid}) is ready again, {down:.1f}s after it died")
        if child.pair is not None:
            self._steer(child.pair)

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
        if child.pair is not None:
            if child is not child.pair.target:
                self._close_sockets(child)
            self._steer(child.pair)

    def _restart(self, child: _Child, now: float) -> None:
        try:
            if child.pair is not None and not child.sockets:
                self._open_sockets(child)
            child.process = self._spawn(child)
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

    def _steer(self, pair: _Pair) -> None:
        """Send new connections to the instance core/steering.py picks. The sockets of an active that died
        are kept until another instance is ready: the connections they queued wait there, and move to the
        new target's socket when they close (tcp_migrate_req)."""
        names = {child.spec.name: child for child in pair.instances}
        current = pair.target.spec.name if pair.target is not None else None
        chosen = steer(current, {name: child.ready for name, child in names.items()})
        if chosen is not None and chosen != current:
            previous, pair.target = pair.target, names[chosen]
            self._point_groups(pair)
            if previous is not None and previous.process is None:
                self._close_sockets(previous)
            self.log(f"{pair.spec.name}: new connections go to {chosen} (pid {_pid(pair.target)})")
        if (pid := _pid(pair.target)) is not None:  # also a target restarted on its own sockets
            self._write_pid(pair.spec.name, pid)

    def _open_sockets(self, child: _Child) -> None:
        assert child.pair is not None
        shared = [_listen(listen, reuseport=True) for listen in child.pair.spec.sockets]
        child.sockets = [*shared, _listen(child.spec.sockets[-1])]
        child.pair.order = listened(child.pair.order, child.spec.name)
        self._point_groups(child.pair)

    def _close_sockets(self, child: _Child) -> None:
        assert child.pair is not None
        for sock in child.sockets:
            sock.close()
        child.sockets = []
        child.pair.order = closed(child.pair.order, child.spec.name)
        self._point_groups(child.pair)

    def _point_groups(self, pair: _Pair) -> None:
        """(Re)attach each address's steering program: after any socket joins or leaves a group, the index
        of the target's socket may have changed. Before any instance is ready, the first socket waits."""
        target = pair.target.spec.name if pair.target is not None else None
        index = pair.order.index(target) if target in pair.order else 0
        holder = next((child for child in pair.instances if child.sockets), None)
        if holder is None:
            return
        for sock in holder.sockets[: len(pair.spec.sockets)]:
            steer_group(sock, index)

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
        for child in self.children:
            for sock in child.sockets:
                sock.close()
        self.children.clear()
        self.pairs.clear()


def _pid(child: _Child | None) -> int | None:
    return child.process.pid if child is not None and child.process is not None else None


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
