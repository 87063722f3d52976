"""Control-plane state (SQLAlchemy 2). The schema changes only through Alembic (core/migrations)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.contracts import DeploymentStatus
from core.scheduler.model import NodeState


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned in UTC on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("prj"))
    name: Mapped[str] = mapped_column(String(63), unique=True)
    # Signs the git providers' webhooks for this project; encrypted like every secret.
    webhook_secret: Mapped[str | None] = mapped_column(Text, default=None)
    # Pull requests get an environment `pr-<number>`, cloned from `preview_base_environment`.
    previews_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    preview_base_environment: Mapped[str] = mapped_column(
        String(63), default="production", server_default="production"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("env"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    # A preview environment: the pull request it serves and the environment it inherits from.
    pull_request: Mapped[int | None] = mapped_column(Integer, default=None)
    base_environment_id: Mapped[str | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        UniqueConstraint("slug", name="uq_services_slug"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("svc"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    # The service's part of its hostnames (`<slug>-<environment>.<apps domain>`), unique platform-wide.
    slug: Mapped[str] = mapped_column(String(63))
    # Source: a prebuilt image, or code (a git repository, or a directory uploaded per deploy).
    image: Mapped[str | None] = mapped_column(String(512), default=None)
    repo_url: Mapped[str | None] = mapped_column(String(1024), default=None)
    repo_branch: Mapped[str | None] = mapped_column(String(255), default=None)
    # A token for private repositories, encrypted with DOCKYARD_SECRET_KEY; never returned by the API.
    repo_credential: Mapped[str | None] = mapped_column(Text, default=None)
    # Build settings (None: detected from the source and its config files).
    root_directory: Mapped[str | None] = mapped_column(String(255), default=None)
    dockerfile_path: Mapped[str | None] = mapped_column(String(255), default=None)
    build_command: Mapped[str | None] = mapped_column(Text, default=None)
    start_command: Mapped[str | None] = mapped_column(Text, default=None)
    port: Mapped[int] = mapped_column(Integer, default=8080)
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    health_check_path: Mapped[str | None] = mapped_column(String(255), default=None)
    # Git-driven deploys: pushes deploy only when a changed path matches (Railway's watchPatterns),
    # and the service joins its project's pull-request previews unless `previews` is off.
    watch_patterns: Mapped[list[str]] = mapped_column(default=list)
    previews: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    # Placement (core/scheduler): what each replica reserves on its node and runs limited to (None:
    # nothing reserved, unlimited), node label constraints ("key=value", "key!=value"), and the
    # strategy (spread | binpack).
    cpu_millis: Mapped[int | None] = mapped_column(Integer, default=None)
    memory_mb: Mapped[int | None] = mapped_column(Integer, default=None)
    constraints: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    placement_strategy: Mapped[str] = mapped_column(String(16), default="spread", server_default="spread")
    # Rollouts (Railway's overlapSeconds, drainingSeconds): how long the old replicas keep serving once
    # the new ones are routed, and their SIGTERM → SIGKILL grace. None: the platform's defaults.
    overlap_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    draining_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Variable(Base):
    """A service's variable in one environment: given to its replicas (and, for NIXPACKS_*, to its
    builds). Preview environments inherit their base environment's and may override them."""

    __tablename__ = "variables"
    __table_args__ = (UniqueConstraint("service_id", "environment_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("var"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)  # encrypted with DOCKYARD_SECRET_KEY
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """One request to a project's webhook endpoint, and what Dockyard made of it."""

    __tablename__ = "webhook_deliveries"
    # A delivery id is processed once: `dedupe_key` is the provider's delivery id for a delivery
    # that was processed, None for a rejected or repeated one.
    __table_args__ = (UniqueConstraint("project_id", "provider", "dedupe_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("whd"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    event: Mapped[str | None] = mapped_column(String(64), default=None)
    delivery_id: Mapped[str | None] = mapped_column(String(255), default=None)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), default=None)
    verdict: Mapped[str] = mapped_column(String(16))  # accepted | ignored | duplicate | rejected | invalid
    reason: Mapped[str] = mapped_column(Text, default="")
    deployment_ids: Mapped[list[str]] = mapped_column(default=list)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("dep"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeploymentStatus.QUEUED.value)
    # What was deployed: {"kind": "image"} | {"kind": "upload", "upload_id"} | {"kind": "repo", "url", "ref"}.
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    builder: Mapped[str | None] = mapped_column(String(16), default=None)
    # The commit built (repository sources): known when the push arrives, or once the clone is made.
    commit_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    commit_message: Mapped[str | None] = mapped_column(Text, default=None)
    commit_author: Mapped[str | None] = mapped_column(String(255), default=None)
    build_log: Mapped[str | None] = mapped_column(Text, default=None)
    image: Mapped[str | None] = mapped_column(String(512), default=None)
    image_digest: Mapped[str | None] = mapped_column(String(80), default=None)
    image_ref: Mapped[str | None] = mapped_column(String(600), default=None)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    failed_step: Mapped[str | None] = mapped_column(String(32), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    workflow_id: Mapped[str] = mapped_column(String(255))
    # What the replicas of this deployment run: the DeployRequest that deploys it (variables sealed as
    # they were at its creation), kept for good. Until `submitted_at` is set the deployment is in the
    # outbox: domain/submissions.py hands the request to Temporal again after a crash, keyed by the
    # deployment id, so it is deployed once; a scale in place starts more replicas of exactly it.
    deploy_request: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    # When it left the outbox: Temporal confirmed it has it, refused it, or a newer one overtook it.
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class SourceUpload(Base):
    """A directory uploaded for one deploy (`dockyard deploy PATH`), kept as a gzipped tarball."""

    __tablename__ = "source_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("upl"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Replica states that hold a place on their node (others: exited, removed, lost).
LIVE_REPLICA_STATES = ("created", "running", "restarting")


class Replica(Base):
    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    node: Mapped[str] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(255), default=None)
    container_id: Mapped[str | None] = mapped_column(String(80), default=None)
    state: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Route(Base):
    """What Traefik serves for one service in one environment: a hostname and its servers (and, while a
    release is in its stability window, the servers to fall back on)."""

    __tablename__ = "routes"

    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    environment_id: Mapped[str] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True
    )
    hostname: Mapped[str] = mapped_column(String(255), unique=True)
    deployment_id: Mapped[str] = mapped_column(String(32))
    servers: Mapped[list[str]] = mapped_column(default=list)
    # The previous deployment's servers, answering while none of `servers` can, during the stability
    # window of `deployment_id`'s release (empty otherwise).
    fallback_servers: Mapped[list[str]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    project_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    address: Mapped[str | None] = mapped_column(String(64), default=None)
    result: Mapped[str] = mapped_column(String(16), default="ok", server_default="ok")


# --- autoscaling ---------------------------------------------------------------------------------


class Autoscaling(Base):
    """A service's autoscaling in one environment (core/autoscaling.py AutoscalingPolicy, as JSON); its
    AutoscalerWorkflow (`autoscale/<service>/<environment>`) runs while the row exists."""

    __tablename__ = "autoscaling"

    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    environment_id: Mapped[str] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True
    )
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ScalingEvent(Base):
    """One decision of an autoscaler that changed, or wanted to change, the replicas: its inputs (the
    metric values per target), what it recommended and decided, why, and what became of it."""

    __tablename__ = "scaling_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    current: Mapped[int] = mapped_column(Integer)
    recommendation: Mapped[int] = mapped_column(Integer)
    desired: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[str] = mapped_column(String(255))  # "scaled", "held", or why the scale did not run


# --- people --------------------------------------------------------------------------------------


class User(Base):
    """A person. Platform role `admin` (nodes, pools, users, settings) or `member`; what a member may do
    in a project is their membership's role there. No password until an invitation is accepted."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    # A password someone else chose (the first admin's, generated): to be changed at the next login.
    password_change_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    role: Mapped[str] = mapped_column(String(16), default="member")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class Invitation(Base):
    """A single-use link that lets its holder create an account (and join a project): stored hashed."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16), default="member")
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), default=None
    )
    project_role: Mapped[str | None] = mapped_column(String(16), default=None)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    used_by_user_id: Mapped[str | None] = mapped_column(String(32), default=None)


class ApiToken(Base):
    """A credential for programs: a person's own (`personal`: acts as that person) or a project's deploy
    token (`deploy`: deploys and reads that project only). Shown once, stored hashed."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, so that a person can tell their tokens apart in a list.
    prefix: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None, index=True
    )
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), default=None
    )
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Membership(Base):
    """A person's role in a project: owner, developer (deploy, variables, settings) or viewer (read)."""

    __tablename__ = "memberships"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- nodes ---------------------------------------------------------------------------------------


class Node(Base):
    """A machine running `dockyard agent`, enrolled once with a join token. Its identity is its id, in
    its certificate as dockyard://node/<id>; its name is for people and unique among current nodes."""

    __tablename__ = "nodes"
    __table_args__ = (
        Index(
            "uq_nodes_current_name",
            "name",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("node"))
    name: Mapped[str] = mapped_column(String(63))
    # host:port of the agent's API (HTTPS with mutual TLS).
    address: Mapped[str] = mapped_column(String(255))
    # Only READY takes new replicas (core/scheduler). Admins move it (core/node_states.py TRANSITIONS):
    #   READY ──cordon──▶ CORDONED ──uncordon──▶ READY
    #   READY, CORDONED, DOWN ──drain──▶ DRAINING ──uncordon──▶ READY
    # DOWN is the control plane's, when heartbeats stop; the node comes back to the state it had
    # (`state_before_down`: a cordoned node stays cordoned). A removed node keeps its last state.
    state: Mapped[str] = mapped_column(String(16), default=NodeState.READY.value)
    state_before_down: Mapped[str | None] = mapped_column(String(16), default=None)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the node offers and what its replicas use: {"cpu_millis", "memory_mb", "disk_mb"}.
    capacity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    usage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    # The current certificate (PEM): answered again to a repeated enrollment with the same key.
    certificate: Mapped[str] = mapped_column(Text)
    cert_serial: Mapped[str] = mapped_column(String(40), unique=True)  # hex
    cert_not_after: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(default=None)


class JoinToken(Base):
    """A single-use, expiring secret that lets one new node enroll. Only its SHA-256 is stored."""

    __tablename__ = "join_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("jtk"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    # Not a foreign key: the token is claimed before the node's row exists, in the same transaction.
    used_by_node_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # The node id the enrollment takes, reserved before the machine existed (a node pool's guest is
    # named and tagged with it); None: the enrollment makes a new id.
    reserved_node_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RevokedCertificate(Base):
    """A certificate the control plane refuses on every call, although the CA signed it and it has not
    expired (a removed node's). Rows may go once `not_after` has passed: expiry refuses it then."""

    __tablename__ = "revoked_certificates"

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # hex
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(255))
    not_after: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- node pools ------------------------------------------------------------------------------------


class NodePool(Base):
    """Guests cloned from one Proxmox template, kept between `min_size` and `max_size`; `size` is how
    many there should be now. NodePoolWorkflow (`pool/<id>`) reconciles the pool to it."""

    __tablename__ = "node_pools"
    __table_args__ = (
        Index(
            "uq_node_pools_current_name",
            "name",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pool"))
    name: Mapped[str] = mapped_column(String(40))
    # core.proxmox.spec.NodePoolSpec as JSON (its min_size and max_size kept equal to the columns).
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    min_size: Mapped[int] = mapped_column(Integer)
    max_size: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    workflow_id: Mapped[str] = mapped_column(String(255))
    # DELETE: the pool scales to 0, then `removed_at` is set.
    delete_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(default=None)


class PoolNode(Base):
    """One guest of a node pool, from before it exists until it is destroyed. `node_id` is reserved
    first: the guest is named and tagged with it and its agent enrolls as that node.

        PROVISIONING ─▶ ENROLLING ─▶ READY ⇄ DECOMMISSIONING ─▶ DESTROYED
              └────────────┴──▶ FAILED ◀─────────────┘ (message: the step and the reason)

    A decommission undone before its guest stopped goes back to READY (its node uncordoned).
    """

    __tablename__ = "pool_nodes"

    node_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pool_id: Mapped[str] = mapped_column(ForeignKey("node_pools.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))
    pve_node: Mapped[str | None] = mapped_column(String(63), default=None)
    vmid: Mapped[int | None] = mapped_column(Integer, default=None)
    address: Mapped[str | None] = mapped_column(String(255), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    workflow_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Decommissions that failed before the guest stopped and were undone (the node uncordoned, READY
    # again): the pool waits before trying this guest again (core/pools.py).
    decommission_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    decommission_failed_at: Mapped[datetime | None] = mapped_column(default=None)
