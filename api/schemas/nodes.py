"""Nodes: join tokens, enrollment and reading them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.schemas.common import Body, DnsLabel, Read
from core.pki import CertificateProblem, load_csr

JOIN_TOKEN_DEFAULT_TTL_SECONDS = 900
JOIN_TOKEN_MAX_TTL_SECONDS = 86400
NodeName = Annotated[DnsLabel, Field(min_length=1, max_length=63)]
# host:port of the agent's API: an IPv4 address, a bracketed IPv6 address or a DNS name.
NodeAddress = Annotated[
    str,
    Field(
        max_length=255,
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$",
        description="host:port where the control plane reaches the agent's API",
    ),
]
LabelKey = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$")]
LabelValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{0,63}$")]


def _valid_port(address: str) -> str:
    port = int(address.rpartition(":")[2])
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    return address


def _valid_csr(pem: str) -> str:
    try:
        load_csr(pem)
    except CertificateProblem as exc:
        raise ValueError(str(exc)) from None
    return pem


class JoinTokenCreate(Body):
    ttl_seconds: int = Field(
        default=JOIN_TOKEN_DEFAULT_TTL_SECONDS,
        ge=60,
        le=JOIN_TOKEN_MAX_TTL_SECONDS,
        description="how long the token may be used (once)",
    )


class JoinTokenCreated(BaseModel):
    id: str
    token: str = Field(description="shown once: only its SHA-256 is stored")
    expires_at: datetime
    created_at: datetime
    ca_fingerprint: str = Field(description="SHA-256 of Dockyard's CA certificate, for the agent to pin")
    command: str = Field(description="what to run on the new node")


class NodeCapacity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu_millis: int = Field(ge=0)
    memory_mb: int = Field(ge=0)
    disk_mb: int = Field(ge=0)


class NodeEnroll(Body):
    multiline = frozenset({"csr"})

    token: str = Field(min_length=1, max_length=256, description="a join token (single use)")
    name: NodeName
    csr: Annotated[str, Field(max_length=16 * 1024), AfterValidator(_valid_csr)] = Field(
        description="PEM certificate signing request for the node's own key (EC P-256/P-384, RSA, Ed25519); "
        "DNS names and IPs it requests go into the certificate, the identity is Dockyard's"
    )
    address: Annotated[NodeAddress, AfterValidator(_valid_port)]
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    capacity: NodeCapacity | None = None


class NodeEnrolled(BaseModel):
    node_id: str
    name: str
    certificate: str = Field(description="the node's certificate (PEM), signed by Dockyard's CA")
    ca_certificate: str = Field(description="Dockyard's CA (PEM): the agent trusts clients it signed")
    control_plane_identity: str = Field(description="the URI SAN the agent accepts from callers")
    cert_not_after: datetime
    gateway_url: str = Field(description="where the agent sends its heartbeats (mutual TLS)")
    heartbeat_interval_seconds: float


class NodeRead(Read):
    id: str
    name: str
    address: str
    state: str = Field(description="READY | CORDONED | DRAINING | DOWN")
    state_before_down: str | None = Field(
        description="while DOWN: the state it comes back in when it answers again (READY or CORDONED)"
    )
    labels: dict[str, str]
    capacity: dict[str, Any]
    usage: dict[str, Any]
    last_heartbeat_at: datetime | None
    cert_serial: str
    cert_not_after: datetime
    created_at: datetime
    removed_at: datetime | None = Field(description="set once removed; its certificate is then revoked")
