"""A real Redis server on a free loopback port, in a temporary directory, persisting nothing, for tests.

with RedisServer() as redis_server:
    client = redis.asyncio.Redis.from_url(redis_server.url)
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Self

from tests.support import missing_component
from tests.support.process import LoopbackServer, LoopbackServerError, free_port

REDIS_BINARY = "redis-server"
OPTIONS = ("--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes")


class RedisServerError(LoopbackServerError):
    pass


class RedisServer(LoopbackServer):
    """`redis-server --bind 127.0.0.1 --port <free> --save ''`; ready once it answers PING."""

    name = REDIS_BINARY
    slug = "redis"
    error = RedisServerError
    poll_seconds = 0.02

    def __init__(self, binary: str | None = None, start_timeout_seconds: float = 10.0) -> None:
        super().__init__(start_timeout_seconds)
        self.binary = binary or shutil.which(REDIS_BINARY) or f"/usr/bin/{REDIS_BINARY}"
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        if not Path(self.binary).is_file():
            missing_component(f"{self.binary} not found (apt-get install redis-server)")
        return super().start()

    def command(self, root: Path) -> list[str]:
        self.port = free_port()
        return [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(root), *OPTIONS]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
