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
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from agent.enrollment import EnrollmentError, NodeIdentity
from agent.renewal import needs_renewal, renew
from agent.replicas import Replicas
from agent.settings import AgentSettings
from core import mtls, pki

log = logging.getLogger("dockyard.agent.heartbeats")

SEND_TIMEOUT_SECONDS = 5.0
FAILURE_LOG_EVERY_SECONDS = 30.0  # a control plane that is away is logged now and then, not every beat


class HeartbeatSender:
    """Sends the heartbeats, and renews the node's certificate when it is due (agent/renewal.py):
    `on_renewed` then makes the agent's own server present the new one."""

    def __init__(
        self,
        identity: NodeIdentity,
        gateway_url: str,
        interval_seconds: float,
        replicas: Replicas,
        settings: AgentSettings,
        on_renewed: Callable[[], None] = lambda: None,
    ):
        self.identity = identity
        self.gateway_url = gateway_url
        self.url = f"{gateway_url.rstrip('/')}/v1/heartbeats"
        self.interval_seconds = interval_seconds
        self.replicas = replicas
        self.settings = settings
        self.on_renewed = on_renewed
        self.sent = 0
        self.renewed = 0
        self._last_failure_logged = 0.0

    async def run(self) -> None:
        """Send a heartbeat every interval until cancelled; failures are logged and the next one tried."""
        while True:
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
                    if await self.renew_if_due(http):
                        break  # a client presenting the new certificate
                    await asyncio.sleep(max(0.0, self.interval_seconds - (time.monotonic() - started)))

    async def renew_if_due(self, http: httpx.AsyncClient) -> bool:
        now = datetime.now(UTC)
        certificate = pki.load_certificate(self.identity.certificate_file.read_bytes())
        if not needs_renewal(certificate, now, self.settings.certificate_renew_fraction):
            return False
        try:
            renewed = await renew(
                self.identity,
                http,
                self.gateway_url,
                self.settings.node_name,
                self.settings.certificate_hosts(),
                now,
            )
        except EnrollmentError as exc:
            self._log_failure(f"certificate renewal failed (the current one stays): {exc}")
            return False
        self.renewed += 1
        log.info(
            "certificate renewed: %s, valid until %s",
            pki.serial_hex(renewed.serial_number),
            renewed.not_valid_after_utc,
        )
        self.on_renewed()
        return True

    async def send(self, http: httpx.AsyncClient) -> None:
        try:
            heartbeat = await self.replicas.heartbeat()
            response = await http.post(self.url, content=heartbeat.model_dump_json(), headers=_JSON)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
            self.interval_seconds = float(response.json().get("interval_seconds") or self.interval_seconds)
            self.sent += 1
        except Exception as exc:  # the loop must outlive any one failure
            self._log_failure(f"heartbeat to {self.url} failed: {exc}")

    def _log_failure(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_failure_logged >= FAILURE_LOG_EVERY_SECONDS:
            self._last_failure_logged = now
            log.warning("%s", message)


_JSON = {"Content-Type": "application/json"}
