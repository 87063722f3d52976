"""A server process on 127.0.0.1 for tests: started from an argv, ready once its own check passes, its
output kept in a log whose tail explains a failure, stopped with SIGTERM (SIGKILL when that is ignored).

The smallest subclass is `RedisServer` (tests/support/redis_server.py).
"""

from __future__ import annotations

import random
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

# Ports for the servers tests start come from below the kernel's ephemeral range (32768-60999 here, and
# Docker's range for published ports): a port taken from that range with bind(0) can be handed to any
# outgoing connection, or to a container, before the server that was meant to listen on it starts.
TEST_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, outside the ephemeral range, not handed out before by this process."""
    candidates = random.sample(TEST_PORTS, 200)
    for port in candidates:
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # the whole sample was busy: let the kernel choose
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LoopbackServerError(RuntimeError):
    pass


class LoopbackServer:
    """A subclass says what to run, `command(root)`, and when it is up, `ready()`; this class does the rest.

    Its files (the log `<slug>.log` and whatever `command` writes) go to the `workdir` it is given, or
    else to a temporary directory of its own, removed at `stop`.
    """

    name: ClassVar[str]  # the program, in messages: "redis-server"
    slug: ClassVar[str]  # in file names: "redis" for redis.log in dockyard-redis-…/
    error: ClassVar[type[RuntimeError]] = LoopbackServerError
    poll_seconds: ClassVar[float] = 0.05
    stop_timeout_seconds: ClassVar[float] = 10

    def __init__(self, start_timeout_seconds: float, workdir: Path | None = None) -> None:
        self.start_timeout_seconds = start_timeout_seconds
        self._workdir = workdir
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def command(self, root: Path) -> list[str]:
        """The argv to run; may write its configuration under `root` and pick ports first."""
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The process's environment; None inherits this one."""
        return None

    def ready(self) -> bool:
        """Whether it serves yet; raise `self.error` for an answer that waiting will not change."""
        raise NotImplementedError

    def start(self) -> Self:
        root = self._workdir
        if root is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix=f"dockyard-{self.slug}-")
            root = Path(self._tempdir.name)
        try:
            argv = self.command(root)
            with (root / f"{self.slug}.log").open("ab") as log:
                self._process = subprocess.Popen(
                    argv,
                    env=self.environment(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=self.stop_timeout_seconds)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def log_tail(self, lines: int = 20) -> str:
        root = self._root()
        if root is None or not (log := root / f"{self.slug}.log").is_file():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _root(self) -> Path | None:
        if self._workdir is not None:
            return self._workdir
        return Path(self._tempdir.name) if self._tempdir is not None else None

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise self.error(f"{self.name} exited with {self._process.returncode}:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(self.poll_seconds)
        raise self.error(f"{self.name} not ready after {self.start_timeout_seconds}s:\n{self.log_tail()}")
