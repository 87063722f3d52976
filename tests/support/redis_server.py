"""A real Redis server on a free loopback port, in a temporary directory, persisting nothing, for tests.

with RedisServer() as redis_server:
    client = redis.asyncio.Redis.from_url(redis_server.url)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from tests.support import missing_component
from tests.support.registry import free_port

REDIS_BINARY = "redis-server"
OPTIONS = ("--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes")


class RedisServerError(RuntimeError):
    pass


class RedisServer:
    """`redis-server --bind 127.0.0.1 --port <free> --save ''`; ready once it answers PING."""

    def __init__(self, binary: str | None = None, start_timeout_seconds: float = 10.0) -> None:
        self.binary = binary or shutil.which(REDIS_BINARY) or f"/usr/bin/{REDIS_BINARY}"
        self.start_timeout_seconds = start_timeout_seconds
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if not Path(self.binary).is_file():
            missing_component(f"{self.binary} not found (apt-get install redis-server)")
        self._dir = tempfile.TemporaryDirectory(prefix="dockyard-redis-")
        root = Path(self._dir.name)
        self.port = free_port()
        self._log = (root / "redis.log").open("wb")
        self._process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(root), *OPTIONS],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def log_tail(self, lines: int = 20) -> str:
        if self._dir is None:
            return ""
        text = (Path(self._dir.name) / "redis.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if self._answers_ping():
                return
            time.sleep(0.02)
        raise RedisServerError(
            f"redis-server not ready after {self.start_timeout_seconds}s:\n{self.log_tail()}"
        )

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
