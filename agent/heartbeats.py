"""Heartbeats: an enrolled agent tells the control plane, every few seconds, that it lives, what it
offers and uses, and the state of every container it owns. They go to the agent gateway (its URL and
the interval come with the enrollment) over mutual TLS: the agent presents its node certificate and
accepts only the control plane's (dockyard://control-plane). A node that stops sending them is DOWN
after `node_down_after_seconds` and its replicas are started elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from agent.enrollment import NodeIdentity
from agent.replicas import Replicas
from core import mtls, pki

log = logging.getLogger("dockyard.agent.heartbeats")

SEND_TIMEOUT_SECONDS = 5.0
FAILURE_LOG_EVERY_SECONDS = 30.0  # a control plane that is away is logged now and then, not every beat


class HeartbeatSender:
    def __init__(self, identity: NodeIdentity, gateway_url: str, interval_seconds: float, replicas: Replicas):
        self.identity = identity
        self.url = f"{gateway_url.rstrip('/')}/v1/heartbeats"
        self.interval_seconds = interval_seconds
        self.replicas = replicas
        self.sent = 0
        self._last_failure_logged = 0.0

    async def run(self) -> None:
        """Send a heartbeat every interval until cancelled; failures are logged and the next one tried."""
        context = mtls.client_context(
            self.identity.ca_file,
            self.identity.certificate_file,
            self.identity.key_file,
            pki.CONTROL_PLANE_IDENTITY,
        )
        async with httpx.AsyncClient(verify=context, timeout=SEND_TIMEOUT_SECONDS) as http:
            while True:
                started = time.monotonic()
                await self.send(http)
                await asyncio.sleep(max(0.0, self.interval_seconds - (time.monotonic() - started)))

    async def send(self, http: httpx.AsyncClient) -> None:
        try:
            heartbeat = await self.replicas.heartbeat()
            response = await http.post(self.url, content=heartbeat.model_dump_json(), headers=_JSON)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
            self.interval_seconds = float(response.json().get("interval_seconds") or self.interval_seconds)
            self.sent += 1
        except Exception as exc:  # the loop must outlive any one failure
            now = time.monotonic()
            if now - self._last_failure_logged >= FAILURE_LOG_EVERY_SECONDS:
                self._last_failure_logged = now
                log.warning("heartbeat to %s failed: %s", self.url, exc)


_JSON = {"Content-Type": "application/json"}
