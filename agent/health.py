"""Is a replica answering? An HTTP GET on its health path (<400), or a TCP connect without one."""

from __future__ import annotations

import asyncio
import contextlib
from typing import NamedTuple

import httpx

from core.contracts import HealthCheck


class Probe(NamedTuple):
    healthy: bool
    evidence: str  # what the probe saw, for the user when the replica never becomes healthy


async def probe(address: str, check: HealthCheck, *, direct: bool = False) -> Probe:
    """Probe `host:port`; never raises, a failure of any kind is "not healthy", with what was seen.

    `direct` says the address is the process's own (not a port published through Docker's proxy),
    so an accepted TCP connection is proof enough."""
    if check.path is None:
        settle = 0 if direct else _TCP_SETTLE_SECONDS
        if await _tcp_probe(address, check.timeout_seconds, settle):
            return Probe(True, f"TCP port {address.rpartition(':')[2]} accepts connections")
        return Probe(False, f"nothing accepts TCP connections on port {address.rpartition(':')[2]}")
    return await _http_probe(check.path, f"http://{address}{check.path}", check.timeout_seconds)


async def _http_probe(path: str, url: str, timeout_seconds: float) -> Probe:
    # trust_env=False: a replica on a node address must never be reached through an HTTP proxy.
    async with httpx.AsyncClient(timeout=timeout_seconds, trust_env=False, follow_redirects=False) as http:
        try:
            response = await http.get(url)
        except httpx.TimeoutException:
            return Probe(False, f"GET {path} got no answer within {timeout_seconds:g}s")
        except httpx.HTTPError as exc:
            return Probe(False, f"GET {path} failed: {type(exc).__name__}")
    return Probe(response.status_code < 400, f"GET {path} answered HTTP {response.status_code}")


# Docker's userland proxy accepts every connection on a published port and only then finds the process
# is not listening, closing the connection at once. A connect alone would call that healthy, so a
# connection that ends within this settle time counts as refused.
_TCP_SETTLE_SECONDS = 0.25


async def _tcp_probe(address: str, timeout_seconds: float, settle_seconds: float) -> bool:
    host, _, port = address.rpartition(":")
    try:
        async with asyncio.timeout(timeout_seconds):
            reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except (OSError, TimeoutError, ValueError):
        return False
    if not settle_seconds:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    try:
        async with asyncio.timeout(min(settle_seconds, timeout_seconds)):
            answered = await reader.read(1)
        return answered != b""
    except TimeoutError:
        return True
    except OSError:
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
