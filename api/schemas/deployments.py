"""Deploying a service (an image, a ref of its repository), rolling back and scaling, and reading
deployments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from api.schemas.common import Body, EnvironmentName, Read, valid_image
from core import limits
from core.contracts import DeploymentStatus


class DeploymentCreate(Body):
    environment: EnvironmentName = "production"
    image: str | None = Field(
        default=None, max_length=512, description="deploy this image and make it the service's image"
    )
    ref: str | None = Field(
        default=None,
        max_length=255,
        description="for a repository service: the branch, tag or commit to build",
    )

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else valid_image(value)


class DeploymentRead(Read):
    id: str
    service_id: str
    environment_id: str
    status: DeploymentStatus
    source: dict[str, Any]
    builder: str | None
    commit_sha: str | None
    commit_message: str | None
    commit_author: str | None
    image: str | None
    image_digest: str | None
    image_ref: str | None
    failed_step: str | None
    message: str | None
    workflow_id: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RollbackCreate(Body):
    deployment_id: str = Field(description="the earlier deployment to redeploy (its environment's)")


class ScaleCreate(Body):
    replicas: int = Field(
        ge=limits.REPLICAS.minimum,
        le=limits.REPLICAS.maximum,
        description="how many replicas the service runs from now on",
    )
    environment: EnvironmentName = "production"
