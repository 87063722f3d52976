"""The node agent's settings: one class, read from `DOCKYARD_AGENT_*` variables.

`DOCKYARD_AGENT_TOKEN` is deliberately the same variable the control plane reads as its
`agent_token`, so one value configures both ends on a single machine.
"""

from __future__ import annotations

import socket

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCKYARD_AGENT_", extra="forbid")

    # Where the agent's HTTP API listens.
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=7801, ge=1, le=65535)

    # Who this node is, and the address container ports are published on (and reported to the control plane).
    node_name: str = Field(default_factory=socket.gethostname, min_length=1)
    node_address: str = "127.0.0.1"

    # The bearer token every /v1 call must carry (mutual TLS replaces it later).
    token: SecretStr

    # The local Docker Engine.
    docker_host: str = "unix:///var/run/docker.sock"

    # The platform's registry: credentials are only ever sent to this host.
    registry_host: str = "127.0.0.1:5000"
    registry_username: str | None = None
    registry_password: SecretStr | None = None

    # Default grace between SIGTERM and SIGKILL when a replica is removed.
    stop_timeout_seconds: int = Field(default=10, ge=0, le=3600)

    def registry_auth(self) -> dict[str, str] | None:
        """The docker SDK `auth_config` for the platform registry, or None without credentials."""
        if not self.registry_username or self.registry_password is None:
            return None
        return {
            "username": self.registry_username,
            "password": self.registry_password.get_secret_value(),
            "serveraddress": self.registry_host,
        }
