"""Serve the node agent: `run(settings)` (the `dockyard agent` command calls it).

Enrolled (or enrolling now, with a join token): HTTPS with mutual TLS, only the control plane's
certificate gets in. Otherwise: HTTP with the bearer token (the local `dockyard up` agent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import uvicorn

from agent.app import Heartbeats, create_app
from agent.auth import ControlPlaneCertificateAuthenticator, metrics_certificate_authenticator
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
    config: uvicorn.Config | None = None

    def present_renewed_certificate() -> None:
        # New handshakes use the context's new chain; connections already open keep theirs.
        assert config is not None and config.ssl is not None and identity is not None
        config.ssl.load_cert_chain(identity.certificate_file, identity.key_file)

    if identity is not None:
        app = create_app(
            settings,
            authenticator=ControlPlaneCertificateAuthenticator(),
            metrics_authenticator=metrics_certificate_authenticator(),
            heartbeats=_heartbeats(settings, identity, present_renewed_certificate),
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
    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False, **options)
    config.load()  # makes config.ssl, which a renewal reloads
    uvicorn.Server(config).run()


def _heartbeats(
    settings: AgentSettings, identity: NodeIdentity, on_renewed: Callable[[], None]
) -> Heartbeats | None:
    info = identity.info()
    gateway_url = settings.gateway_url or info.get("gateway_url")
    if not gateway_url:
        log.warning("no agent gateway known (enrolled with an older control plane?): no heartbeats are sent")
        return None
    interval = float(info.get("heartbeat_interval_seconds") or 2.0)
    return Heartbeats(identity, str(gateway_url), interval, on_renewed)


if __name__ == "__main__":
    run()
