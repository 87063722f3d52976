"""The node agent's settings: one class, read from `DOCKYARD_AGENT_*` variables.

Two modes. Enrolled (mutual TLS): the agent enrolled once with a join token (`join_url`, `join_token`)
and keeps its key and certificate in `state_dir`; it serves HTTPS and answers only the control plane's
certificate. Bearer (the local `dockyard up`, until the platform calls agents by node): plain HTTP with
`token`. `DOCKYARD_AGENT_TOKEN` is deliberately the same variable the control plane reads as its
`agent_token`, so one value configures both ends on a single machine.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_state_dir() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "dockyard-agent"


def _default_node_name() -> str:
    return socket.gethostname().split(".")[0].lower()


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCKYARD_AGENT_", extra="forbid")

    # Where the agent's HTTP API listens.
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=7801, ge=1, le=65535)

    # Who this node is, and the address container ports are published on (and reported to the control plane).
    node_name: str = Field(default_factory=_default_node_name, min_length=1)
    node_address: str = "127.0.0.1"

    # Bearer mode: the token every /v1 call must carry. Not used once the agent has enrolled.
    token: SecretStr | None = None
    # Bearer mode: a token that reads /metrics only (Prometheus'), besides `token`.
    metrics_token: SecretStr | None = None

    # Enrolled mode. The node's key, certificate and Dockyard's CA live in `state_dir` (0700, key 0600).
    state_dir: Path = Field(default_factory=_default_state_dir)
    # Enrolling (once): the control plane's API URL, a join token, and optionally the CA's SHA-256
    # (`sha256:...`, printed with the token) so a control plane with another CA is refused.
    join_url: str | None = None
    join_token: SecretStr | None = None
    join_ca_fingerprint: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    # Where heartbeats go; default: the agent gateway the control plane named at enrollment.
    gateway_url: str | None = None
    # The node's certificate is renewed (through the gateway) once less than this part of its lifetime
    # is left.
    certificate_renew_fraction: float = Field(default=1 / 3, gt=0, lt=1)
    # host:port the control plane calls; default node_address:listen_port.
    advertise_address: str | None = None
    # Told to the control plane at enrollment (the scheduler's constraints match them).
    labels: dict[str, str] = Field(default_factory=dict)
    # More DNS names / IPs for the node's certificate, besides node_address and listen_host.
    tls_hosts: list[str] = Field(default_factory=list)

    # The local Docker Engine.
    docker_host: str = "unix:///var/run/docker.sock"

    # The platform's registry: credentials are only ever sent to this host.
    registry_host: str = "127.0.0.1:5000"
    registry_username: str | None = None
    registry_password: SecretStr | None = None

    # The logs of removed replicas: where they are kept (default `state_dir/logs`), for how long, and at
    # most how many bytes per service (the oldest go first).
    logs_dir: Path | None = None
    logs_retention_hours: float = Field(default=168, gt=0)
    logs_max_bytes_per_service: int = Field(default=64 * 1024 * 1024, ge=1024)

    # Default grace between SIGTERM and SIGKILL when a replica is removed.
    stop_timeout_seconds: int = Field(default=10, ge=0, le=3600)

    def api_address(self) -> str:
        """host:port of this agent's API as the control plane reaches it."""
        if self.advertise_address:
            return self.advertise_address
        host = f"[{self.node_address}]" if ":" in self.node_address else self.node_address
        return f"{host}:{self.listen_port}"

    def certificate_hosts(self) -> list[str]:
        hosts = [self.node_address, self.listen_host, self.api_address().rpartition(":")[0], *self.tls_hosts]
        unspecified = {"", "0.0.0.0", "::", "[::]"}
        return list(dict.fromkeys(host.strip("[]") for host in hosts if host not in unspecified))

    def kept_logs_dir(self) -> Path:
        return self.logs_dir if self.logs_dir is not None else self.state_dir / "logs"

    def registry_auth(self) -> dict[str, str] | None:
        """The docker SDK `auth_config` for the platform registry, or None without credentials."""
        if not self.registry_username or self.registry_password is None:
            return None
        return {
            "username": self.registry_username,
            "password": self.registry_password.get_secret_value(),
            "serveraddress": self.registry_host,
        }
