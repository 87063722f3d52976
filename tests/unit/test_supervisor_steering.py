"""core/steering.py: which instance of an active + standby pair takes new connections, and the index of each
instance's socket in its SO_REUSEPORT group, checked against the kernel itself (real loopback sockets)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.sockets import steer_group
from core.steering import closed, listened, steer
from tests.support.process import free_port


@pytest.mark.parametrize(
    ("target", "ready", "chosen"),
    [
        pytest.param(None, {"a": False, "b": False}, None, id="none ready yet: none chosen"),
        pytest.param(None, {"a": False, "b": True}, "b", id="the first one ready"),
        pytest.param("a", {"a": True, "b": True}, "a", id="the active stays while it is ready"),
        pytest.param("a", {"a": False, "b": True}, "b", id="the active died: the ready standby"),
        pytest.param("a", {"a": False, "b": False}, "a", id="none ready: connections wait on the active's"),
        pytest.param("b", {"a": True, "b": False}, "a", id="either way round"),
    ],
)
def test_steer(target: str | None, ready: dict[str, bool], chosen: str | None) -> None:
    assert steer(target, ready) == chosen


@pytest.mark.parametrize(
    ("order", "name", "after"),
    [
        pytest.param(("a", "b"), "a", ("b",), id="the first of two: the last takes its slot"),
        pytest.param(("a", "b"), "b", ("a",), id="the last: nothing moves"),
        pytest.param(("a", "b", "c", "d"), "b", ("a", "d", "c"), id="the last takes the slot, not a shift"),
        pytest.param(("a",), "a", (), id="the only one"),
    ],
)
def test_closed(order: tuple[str, ...], name: str, after: tuple[str, ...]) -> None:
    assert closed(order, name) == after


def test_listened_appends_and_refuses_a_name_twice() -> None:
    assert listened(("a",), "b") == ("a", "b")
    with pytest.raises(ValueError, match="already listens"):
        listened(("a", "b"), "a")


@contextlib.contextmanager
def reuseport_group(port: int) -> Iterator[dict[str, socket.socket]]:
    sockets: dict[str, socket.socket] = {}
    try:
        yield sockets
    finally:
        for sock in sockets.values():
            sock.close()


def listen_reuseport(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    sock.settimeout(5)
    return sock


def accepted_by(group: dict[str, socket.socket], port: int) -> str:
    """Which socket of the group the kernel gives a new connection to."""
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        for name, sock in group.items():
            sock.setblocking(False)
            try:
                connection, _ = sock.accept()
            except BlockingIOError:
                continue
            finally:
                sock.settimeout(5)
            connection.close()
            return name
    raise AssertionError("no socket of the group accepted the connection")


# Each step: open a new instance's socket, or close one (by its position among the open ones).
steps = st.lists(st.one_of(st.just("open"), st.integers(min_value=0, max_value=3)), min_size=1, max_size=8)


@given(steps)
@settings(max_examples=25, deadline=None)
def test_the_index_of_each_socket_is_the_kernel_s(plan: list[str | int]) -> None:
    """After any sequence of listens and closes, a steering program that answers the index `listened` and
    `closed` give a socket sends every new connection to that socket."""
    port = free_port()
    order: tuple[str, ...] = ()
    with reuseport_group(port) as group:
        for number, step in enumerate(plan):
            if step == "open":
                name = f"i{number}"
                group[name] = listen_reuseport(port)
                order = listened(order, name)
            elif order:
                name = order[step % len(order)]
                group.pop(name).close()
                order = closed(order, name)
            if not order:
                continue
            for index, name in enumerate(order):
                steer_group(group[order[0]], index)
                assert accepted_by(group, port) == name, (plan, order)
