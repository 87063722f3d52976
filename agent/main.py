"""Serve the node agent: `run(settings)` (the `dockyard agent` command calls it).

Enrolled (or enrolling now, with a join token): HTTPS with mutual TLS, only the control plane's
certificate gets in. Otherwise: HTTP with the bearer token (the local `dockyard up` agent).
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from agent.app import Heartbeats, create_app
from agent.auth import ControlPlaneCertificateAuthenticator
from agent.enrollment import EnrollmentError, NodeIdentity, ensure_identity
from agent.settings import AgentSettings
from agent.tls import uvicorn_options

log = logging.getLogger("dockyard.agent")


def run(settings: AgentSettings | None = None) -> None:
    """Serve the agent on listen_host:listen_port until interrupted. Settings default to the environment.
    Raises EnrollmentError when the agent has no usable identity and no token."""
    settings = settings or AgentSettings()
    identity = ensure_identity(settings)
    options: dict[str, Any] = {}
    if identity is not None:
        app = create_app(
            settings,
            authenticator=ControlPlaneCertificateAuthenticator(),
            heartbeats=_heartbeats(settings, identity),
        )
        options = uvicorn_options(identity)
    elif settings.token is not None and settings.token.get_secret_value():
        app = create_app(settings)
    else:
        raise EnrollmentError(
            "this agent is not enrolled: run `dockyard agent --join <API URL> --token <join token>` once "
            "(or set DOCKYARD_AGENT_JOIN_URL and DOCKYARD_AGENT_JOIN_TOKEN); a local agent without "
            "mutual TLS takes DOCKYARD_AGENT_TOKEN instead"
        )
    host, port = settings.listen_host, settings.listen_port
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, **options)


def _heartbeats(settings: AgentSettings, identity: NodeIdentity) -> Heartbeats | None:
    info = identity.info()
    gateway_url = settings.gateway_url or info.get("gateway_url")
    if not gateway_url:
        log.warning("no agent gateway known (enrolled with an older control plane?): no heartbeats are sent")
        return None
    return Heartbeats(identity, str(gateway_url), float(info.get("heartbeat_interval_seconds") or 2.0))


if __name__ == "__main__":
    run()
