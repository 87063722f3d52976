"""A process run as an active + hot-standby pair, the pure part: which instance takes new connections, and
where each instance's socket sits in the kernel's SO_REUSEPORT group (the index a steering program returns).

    steer(target, ready) → the instance to send new connections to (None: none has been ready yet)
    listened(order, name) / closed(order, name) → the group's sockets after one joins or leaves

An instance's life, as the supervisor sees it:

    starting ──serves the routes──▶ standby ──the active dies──▶ active ──dies──▶ starting ...

The kernel keeps a group's listening sockets in an array, in listen() order; when one closes, the last
one is moved into its slot (net/core/sock_reuseport.c). The order here follows the same rule, so the
index of the active's socket is known without asking the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping


def steer(target: str | None, ready: Mapping[str, bool]) -> str | None:
    """Stay on the current target while it is ready (a switch is not free: it moves nothing already
    accepted, but it is a change); else the first ready instance; else keep the current one, whose
    socket holds the connections that wait until an instance is ready."""
    if target is not None and ready.get(target, False):
        return target
    return next((name for name, is_ready in ready.items() if is_ready), target)


def listened(order: tuple[str, ...], name: str) -> tuple[str, ...]:
    if name in order:
        raise ValueError(f"{name} already listens in {order}")
    return (*order, name)


def closed(order: tuple[str, ...], name: str) -> tuple[str, ...]:
    """The group after `name`'s socket closes: the last socket takes its slot."""
    index = order.index(name)
    if index == len(order) - 1:
        return order[:-1]
    return (*order[:index], order[-1], *order[index + 1 : -1])
