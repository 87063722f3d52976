"""Inputs and results of Dockyard's activities (one input and one result type each)."""

from __future__ import annotations

from pydantic import Field

from core.contracts import Contract, DeploymentStatus, PlacementSettings, ReplicaSpec, ReplicaStatus


class ResolvedImage(Contract):
    digest: str
    pinned: str = Field(description="registry/repository@digest")


class StatusUpdate(Contract):
    deployment_id: str
    status: DeploymentStatus
    message: str | None = None
    failed_step: str | None = None
    image_digest: str | None = None
    image_ref: str | None = None
    builder: str | None = None
    commit_sha: str | None = None
    commit_message: str | None = None
    commit_author: str | None = None


class ReleaseState(Contract):
    """What serves a service in an environment right now."""

    active_deployment_id: str | None = None
    active_replica_ids: list[str] = Field(default_factory=list)


class NodeRef(Contract):
    """Where replicas run: an enrolled node (its id and agent address, called over mutual TLS), or,
    with `node_id` None, the local agent of a single-machine installation (DOCKYARD_AGENT_URL)."""

    node_id: str | None = None
    address: str | None = None


class ReplicaBatch(Contract):
    specs: list[ReplicaSpec]
    node: NodeRef = Field(default_factory=NodeRef)


class ReplicaIds(Contract):
    replica_ids: list[str]
    grace_seconds: float | None = None  # None: each replica's own (its service's draining seconds)
    node: NodeRef = Field(default_factory=NodeRef)


class PlacementRequest(Contract):
    deployment_id: str
    service_id: str
    environment_id: str
    replica_ids: list[str]
    placement: PlacementSettings = Field(default_factory=PlacementSettings)


class NodeReplicas(Contract):
    node: NodeRef
    replica_ids: list[str]


class Placement(Contract):
    """The replicas of a deployment grouped by the node that runs them."""

    groups: list[NodeReplicas]


class ReplicaSet(Contract):
    deployment_id: str
    node: str
    replicas: list[ReplicaStatus]


class StabilityWatch(Contract):
    """The replicas of one node to watch after the cut-over, as they passed the health step: their
    restart counts then are the baseline a restart is counted from."""

    node: NodeRef = Field(default_factory=NodeRef)
    replicas: list[ReplicaStatus]


class Rollback(Contract):
    """A deploy that was ACTIVE and is rolled back: it becomes FAILED with the step and the reason, and
    the deployment it replaced (if any) ACTIVE again, with its replicas."""

    failed_deployment_id: str
    failed_step: str
    reason: str
    previous_deployment_id: str | None = None


class RouteSpec(Contract):
    service_id: str
    environment_id: str
    hostname: str
    deployment_id: str
    servers: list[str]


class RouteKey(Contract):
    service_id: str
    environment_id: str


class OrphanQuery(Contract):
    service_id: str
    environment_id: str
    keep_deployment_ids: list[str]
