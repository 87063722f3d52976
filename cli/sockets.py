"""Listening sockets the supervisor holds for its children: handed over by socket activation (systemd's
LISTEN_FDS protocol, the sockets from fd 3), and, for an active + hot-standby pair, one SO_REUSEPORT copy
per instance, with a classic BPF program choosing which socket of a reuseport group gets each new
connection."""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Listen:
    """A TCP socket the supervisor listens on and passes to the child, under `name` (LISTEN_FDNAMES)."""

    name: str
    host: str
    port: int


FIRST_LISTEN_FD = 3  # SD_LISTEN_FDS_START


def move_to_listen_fds(fds: list[int]) -> None:
    """In the child, before exec: place `fds` at 3, 4, ... (inheritable)."""
    # Copied above any fd in use first, so that placing one at 3, 4, ... never overwrites another.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in fds]
    for index, fd in enumerate(high):
        os.dup2(fd, FIRST_LISTEN_FD + index)  # inheritable
        os.close(fd)


def listen_on(listen: Listen, *, reuseport: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in listen.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


_SO_ATTACH_REUSEPORT_CBPF = 51  # asm-generic/socket.h; not in Python's socket module
_BPF_RET_K = 0x06  # BPF_RET | BPF_K: "return this constant"


def steer_group(sock: socket.socket, index: int) -> None:
    """Attach to `sock`'s reuseport group a classic BPF program that picks the socket at `index` for every
    new connection. An index past the group's end falls back to the kernel's hash (any socket)."""
    instruction = struct.pack("HBBI", _BPF_RET_K, 0, 0, index)  # struct sock_filter
    code = ctypes.create_string_buffer(instruction, len(instruction))
    program = struct.pack("HP", 1, ctypes.addressof(code))  # struct sock_fprog; the kernel copies it
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_REUSEPORT_CBPF, program)


_MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")


def allow_migration(log: Callable[[str], None]) -> None:
    """Connections the kernel queued on a listening socket are moved to another socket of its reuseport
    group when it closes, instead of reset. Without it (not root, or an older kernel), the connections
    that reach an active instance between its death and the supervisor's next check are reset."""
    try:
        if _MIGRATE_REQ.read_text().strip() != "1":
            _MIGRATE_REQ.write_text("1\n")
    except OSError as exc:
        log(
            f"cannot set net.ipv4.tcp_migrate_req=1 ({exc}): a connection that reaches an active instance "
            "as it dies is reset instead of moved to the standby"
        )
