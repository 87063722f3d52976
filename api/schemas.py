"""Request and response bodies of the REST API (the OpenAPI contract of the CLI and dashboard)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.contracts import DeploymentStatus
from core.images import InvalidImageReference, parse_image_reference

DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
ProjectName = Annotated[DnsLabel, Field(min_length=1, max_length=63)]
ServiceName = Annotated[DnsLabel, Field(min_length=1, max_length=40)]
EnvironmentName = Annotated[DnsLabel, Field(min_length=1, max_length=20)]
HealthPath = Annotated[str, Field(pattern=r"^/[^\s]*$", max_length=255)]


def _valid_image(value: str) -> str:
    try:
        parse_image_reference(value)
    except InvalidImageReference as exc:
        raise ValueError(str(exc)) from None
    return value


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ProjectCreate(Body):
    name: ProjectName


class EnvironmentCreate(Body):
    name: EnvironmentName


class ProjectRead(Read):
    id: str
    name: str
    created_at: datetime


class EnvironmentRead(Read):
    id: str
    project_id: str
    name: str
    created_at: datetime


class ServiceCreate(Body):
    name: ServiceName
    image: str = Field(max_length=512, description="image reference, e.g. registry:5000/app:1.2")
    port: int = Field(default=8080, ge=1, le=65535, description="port the service listens on ($PORT)")
    replicas: int = Field(default=1, ge=1, le=100)
    health_check_path: HealthPath | None = None

    _image = field_validator("image")(_valid_image)


class ServiceUpdate(Body):
    image: str | None = Field(default=None, max_length=512)
    port: int | None = Field(default=None, ge=1, le=65535)
    replicas: int | None = Field(default=None, ge=1, le=100)
    health_check_path: HealthPath | None = None

    @field_validator("image", "port", "replicas")
    @classmethod
    def _not_null(cls, value: str | int | None) -> str | int | None:
        # Only health_check_path may be cleared with null; these columns are NOT NULL.
        if value is None:
            raise ValueError("must not be null (leave the field out to keep the current value)")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else _valid_image(value)


class ServiceRead(Read):
    id: str
    project_id: str
    name: str
    image: str
    port: int
    replicas: int
    health_check_path: str | None
    created_at: datetime
    urls: dict[str, str] = Field(default_factory=dict, description="URL per environment name")


class DeploymentCreate(Body):
    environment: EnvironmentName = "production"
    image: str | None = Field(
        default=None, max_length=512, description="deploy this image and make it the service's image"
    )

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else _valid_image(value)


class DeploymentRead(Read):
    id: str
    service_id: str
    environment_id: str
    status: DeploymentStatus
    image: str
    image_digest: str | None
    image_ref: str | None
    failed_step: str | None
    message: str | None
    workflow_id: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class ServiceUrl(BaseModel):
    service_id: str
    environment: str
    url: str
    deployment_id: str | None = Field(description="the deployment serving it, if any")


class ErrorItem(BaseModel):
    field: str
    reason: str


class ErrorBody(BaseModel):
    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)
