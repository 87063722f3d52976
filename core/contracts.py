"""Typed contracts shared by the API, the workflows and activities, and the node agent.

These are the only shapes that cross a process boundary (HTTP or Temporal payloads).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from core import limits

REPLICA_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,127}$"


class DeploymentStatus(StrEnum):
    QUEUED = "QUEUED"
    BUILDING = "BUILDING"
    DEPLOYING = "DEPLOYING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SUPERSEDED = "SUPERSEDED"
    REMOVED = "REMOVED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATUSES


_FINAL_STATUSES = {
    DeploymentStatus.ACTIVE,
    DeploymentStatus.FAILED,
    DeploymentStatus.CANCELLED,
    DeploymentStatus.SUPERSEDED,
    DeploymentStatus.REMOVED,
}


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- node agent ---------------------------------------------------------------------------------


class HealthCheck(Contract):
    """How the agent decides a replica is healthy: an HTTP GET on `path` answering 2xx/3xx,
    or, with no path, a TCP connection to the published port."""

    path: str | None = Field(default=None, pattern=r"^/")
    timeout_seconds: float = Field(default=2.0, gt=0, le=60)


class ReplicaSpec(Contract):
    """Everything a node agent needs to run one replica. Replicas are immutable: one id, one spec."""

    replica_id: str = Field(pattern=REPLICA_ID_PATTERN)
    service_id: str
    environment_id: str
    deployment_id: str
    project_id: str | None = None  # a label of the replica and its metrics
    image: str = Field(description="image reference pinned by digest: registry/name@sha256:...")
    port: int = Field(
        default=8080,
        ge=limits.PORT.minimum,
        le=limits.PORT.maximum,
        description="port the process listens on (also $PORT)",
    )
    env: dict[str, str] = Field(default_factory=dict)
    sealed_env: str | None = Field(
        default=None, description="the service's variables, sealed with the platform key (core.secrets)"
    )
    command: list[str] | None = None
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    # Limits the container runs with (None: unlimited), as the scheduler reserved them on the node.
    cpu_millis: int | None = Field(default=None, ge=10)
    memory_mb: int | None = Field(default=None, ge=6)
    # SIGTERM → SIGKILL when the replica is stopped (Railway's drainingSeconds); None: the agent's default.
    stop_grace_seconds: int | None = Field(
        default=None, ge=limits.DRAINING_SECONDS.minimum, le=limits.DRAINING_SECONDS.maximum
    )


class ReplicaState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    RESTARTING = "restarting"
    EXITED = "exited"
    MISSING = "missing"


class ReplicaStatus(Contract):
    replica_id: str
    state: ReplicaState
    healthy: bool = False
    address: str | None = Field(default=None, description="host:port the replica is published on")
    container_id: str | None = None
    service_id: str | None = None
    environment_id: str | None = None
    deployment_id: str | None = None
    image: str | None = None
    message: str | None = None
    restart_count: int = Field(default=0, description="times Docker's restart policy restarted it")
    exit_code: int | None = Field(default=None, description="the exit code of its last run, once it ran")


class ReplicaLog(Contract):
    """The last lines a replica wrote (stdout and stderr), oldest first."""

    replica_id: str
    lines: list[str]


class LogLine(Contract):
    """One line a replica wrote, with the time Docker received it."""

    time: datetime
    stream: Literal["stdout", "stderr"]
    message: str
    replica_id: str
    deployment_id: str | None = None
    node: str = Field(description="the node the replica ran on")


class LogNotice(Contract):
    """Something a log reader should know besides the lines: lines dropped because it read too slowly,
    or a node whose logs could not be read (`reason`)."""

    kind: Literal["dropped", "unavailable"]
    node: str
    reason: str
    count: int = 0


class NodeInfo(Contract):
    name: str
    address: str
    docker_version: str


class NodeResources(Contract):
    cpu_millis: int = 0
    memory_mb: int = 0
    disk_mb: int = 0


class Heartbeat(Contract):
    """What a node's agent reports of itself: capacity, what is in use, its labels, and the state of
    every container it owns (not probed)."""

    node: NodeInfo
    capacity: NodeResources
    usage: NodeResources
    labels: dict[str, str] = Field(default_factory=dict)
    replicas: list[ReplicaStatus] = Field(default_factory=list)


class AgentError(Contract):
    """The body of every agent error: which step failed and why, in words a user can act on."""

    step: str
    reason: str
    replica_id: str | None = None


# --- workflows ------------------------------------------------------------------------------------


CredentialKind = Literal["token", "deploy_key"]


class RepoCredential(BaseModel):
    """A service's repository credential as the control plane hands it to a builder
    (GET /internal/services/{id}/repo-credential, the builders' identity only)."""

    kind: CredentialKind = Field(
        default="token",  # a control plane from before deploy keys answers only the token
        description="how the builder uses it: HTTP basic auth, or an SSH key",
    )
    token: str = Field(
        description="the secret: the token, or the deploy key's private key (named `token` for "
        "builders that predate deploy keys)"
    )


class SourceSpec(Contract):
    """Where a deployment's code comes from; `image` means nothing to build."""

    kind: Literal["image", "upload", "repo"]
    upload_id: str | None = None
    repo_url: str | None = None
    ref: str | None = Field(default=None, description="branch, tag or commit to check out")
    credential: bool = Field(
        default=False, description="the builder asks the API for the repository's token or deploy key"
    )
    redeploy_of: str | None = Field(
        default=None,
        # Named `release_of` in histories and outboxes recorded before 2026-12: still read.
        validation_alias=AliasChoices("redeploy_of", "release_of"),
        description="an earlier deployment deployed again (rollback, scale, heal): its image",
    )


class BuildOptions(Contract):
    """How to build code into an image; unset fields are detected from the source."""

    root_directory: str | None = None
    dockerfile_path: str | None = None
    build_command: str | None = None
    start_command: str | None = None
    variables: dict[str, str] = Field(default_factory=dict, description="build-time variables (NIXPACKS_*)")


class PlacementSettings(Contract):
    """Where a service's replicas may run and what each reserves on its node (core/scheduler)."""

    cpu_millis: int | None = Field(default=None, ge=10, description="CPU per replica, 1000 = one core")
    memory_mb: int | None = Field(default=None, ge=6, description="memory per replica, MiB")
    constraints: list[str] = Field(default_factory=list, description='node labels: "key=value", "key!=value"')
    strategy: Literal["spread", "binpack"] = "spread"


class DeploymentConfig(BaseModel):
    """The configuration a deployment runs with, kept with it (Deployment.config, JSON): what a
    rollback to it runs again, what its replicas reserve on their nodes. Snapshots recorded by
    older versions may lack keys (domain/deployments.py fills them); keys this version does not know
    are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    port: int
    replicas: int
    health_check_path: str | None = None
    start_command: str | None = None
    cpu_millis: int | None = None
    memory_mb: int | None = None
    constraints: list[str] = Field(default_factory=list)
    placement_strategy: Literal["spread", "binpack"] = "spread"
    overlap_seconds: float | None = None
    draining_seconds: int | None = None

    @property
    def placement(self) -> PlacementSettings:
        return PlacementSettings(
            cpu_millis=self.cpu_millis,
            memory_mb=self.memory_mb,
            constraints=self.constraints,
            strategy=self.placement_strategy,
        )


class DeployRequest(Contract):
    """A request to deploy one deployment of a service in an environment."""

    deployment_id: str
    service_id: str
    service_name: str
    environment_id: str
    environment_name: str
    project_id: str | None = Field(default=None, description="None in requests recorded before 2026-12")
    hostname: str = Field(description="the hostname Traefik routes to the service in this environment")
    image: str | None = Field(default=None, description="image as the user gave it; None when building")
    source: SourceSpec = Field(default_factory=lambda: SourceSpec(kind="image"))
    build: BuildOptions = Field(default_factory=BuildOptions)
    image_repository: str | None = Field(
        default=None, description="where a built image is pushed: <registry>/<project>/<service>"
    )
    replicas: int = Field(default=1, ge=limits.REPLICAS.minimum, le=limits.REPLICAS.maximum)
    port: int = Field(default=8080, ge=limits.PORT.minimum, le=limits.PORT.maximum)
    env: dict[str, str] = Field(default_factory=dict)
    # The service's variables travel sealed: Temporal keeps workflow inputs in its history, and
    # only the activity that hands them to an agent opens them.
    sealed_env: str | None = None
    health_check_path: str | None = None
    placement: PlacementSettings = Field(default_factory=lambda: PlacementSettings())
    # Seconds the old replicas keep serving beside the new ones once those are routed (Railway's
    # overlapSeconds; None: the platform's drain_seconds) and their stop grace (drainingSeconds).
    overlap_seconds: float | None = Field(
        default=None, ge=limits.OVERLAP_SECONDS.minimum, le=limits.OVERLAP_SECONDS.maximum
    )
    draining_seconds: int | None = Field(
        default=None, ge=limits.DRAINING_SECONDS.minimum, le=limits.DRAINING_SECONDS.maximum
    )


class DeployAccepted(Contract):
    deployment_id: str
    workflow_id: str


class DeployResult(Contract):
    deployment_id: str
    status: DeploymentStatus
    image_digest: str | None = None
    message: str | None = None
