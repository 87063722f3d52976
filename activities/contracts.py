"""Inputs and results of Dockyard's activities (one input and one result type each)."""

from __future__ import annotations

from pydantic import Field

from core.contracts import Contract, DeploymentStatus, ReplicaSpec, ReplicaStatus


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


class ReplicaBatch(Contract):
    specs: list[ReplicaSpec]


class ReplicaIds(Contract):
    replica_ids: list[str]
    grace_seconds: float = 10.0


class ReplicaSet(Contract):
    deployment_id: str
    node: str
    replicas: list[ReplicaStatus]


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
