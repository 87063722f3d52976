"""Request and response bodies of the REST API (the OpenAPI contract of the CLI and dashboard)."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

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


class ProjectUpdate(Body):
    previews_enabled: bool | None = Field(
        default=None, description="pull requests get a preview environment `pr-<number>`"
    )
    preview_base_environment: EnvironmentName | None = Field(
        default=None, description="the environment previews inherit variables from (default production)"
    )


class ProjectRead(Read):
    id: str
    name: str
    previews_enabled: bool
    preview_base_environment: str
    created_at: datetime


class EnvironmentRead(Read):
    id: str
    project_id: str
    name: str
    pull_request: int | None = Field(description="the pull request a preview environment serves")
    base_environment_id: str | None = Field(description="where a preview inherits its variables from")
    created_at: datetime


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\0" in value:
        raise ValueError("must be a relative path inside the source, without '..'")
    return value


RelativePath = Annotated[str, Field(max_length=255), AfterValidator(_relative_path)]
RepoUrl = Annotated[str, Field(max_length=1024, pattern=r"^(https?://|ssh://|git@|file://)\S+$")]
RepoBranch = Annotated[str, Field(max_length=255, pattern=r"^[^\s~^:?*\[\\]+$")]
WatchPatterns = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=255)]],
    Field(
        max_length=100,
        description="deploy a push only when a changed path matches (gitignore-style, `!` negates; "
        "Railway's watchPatterns); empty: every push",
    ),
]


class BuildFields(Body):
    """How code is built; leave out to detect it (Dockerfile, or Nixpacks-style auto-detection)."""

    root_directory: RelativePath | None = Field(default=None, description="build from this subdirectory")
    dockerfile_path: RelativePath | None = None
    build_command: str | None = Field(default=None, max_length=4096)
    start_command: str | None = Field(default=None, max_length=4096)


class ServiceCreate(BuildFields):
    """A service runs `image`, or code from `repo_url` (at `repo_branch`), or code uploaded with
    each deploy (`dockyard deploy PATH`) when neither is given."""

    name: ServiceName
    image: str | None = Field(default=None, max_length=512, description="image, e.g. registry:5000/app:1.2")
    repo_url: RepoUrl | None = None
    repo_branch: RepoBranch | None = None
    repo_token: SecretStr | None = Field(
        default=None,
        description="token for a private repository (or `user:token`, e.g. a Bitbucket app password); "
        "stored encrypted, never returned",
    )
    watch_patterns: WatchPatterns = Field(default_factory=list)
    previews: bool = Field(default=True, description="deploy it in pull-request previews (when enabled)")
    port: int = Field(default=8080, ge=1, le=65535, description="port the service listens on ($PORT)")
    replicas: int = Field(default=1, ge=1, le=100)
    health_check_path: HealthPath | None = None

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else _valid_image(value)

    @model_validator(mode="after")
    def _one_source(self) -> ServiceCreate:
        if self.image and self.repo_url:
            raise ValueError("image and repo_url: give one source, not both")
        if self.repo_branch and not self.repo_url:
            raise ValueError("repo_branch: needs repo_url")
        return self


class ServiceUpdate(BuildFields):
    image: str | None = Field(
        default=None, max_length=512, description="run this image (drops the repository)"
    )
    repo_url: RepoUrl | None = Field(default=None, description="build this repository (drops the image)")
    repo_branch: RepoBranch | None = None
    repo_token: SecretStr | None = Field(
        default=None, description='replace the repository token; "" removes it'
    )
    watch_patterns: WatchPatterns | None = None
    previews: bool | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    replicas: int | None = Field(default=None, ge=1, le=100)
    health_check_path: HealthPath | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ServiceUpdate:
        if self.image and self.repo_url:
            raise ValueError("image and repo_url: give one source, not both")
        return self

    @field_validator("image", "repo_url", "repo_branch", "watch_patterns", "previews", "port", "replicas")
    @classmethod
    def _not_null(cls, value: object) -> object:
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
    image: str | None
    repo_url: str | None
    repo_branch: str | None
    root_directory: str | None
    dockerfile_path: str | None
    build_command: str | None
    start_command: str | None
    has_repo_credential: bool = Field(description="a repository token is stored (it is never returned)")
    watch_patterns: list[str]
    previews: bool
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
    ref: str | None = Field(
        default=None,
        max_length=255,
        description="for a repository service: the branch, tag or commit to build",
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


# --- variables -----------------------------------------------------------------------------------

VARIABLE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
VARIABLE_NAME_MAX_LENGTH = 255
VARIABLE_VALUE_MAX_BYTES = 32 * 1024
# Names Dockyard sets itself, and what to do instead.
RESERVED_VARIABLES = {"PORT": "Dockyard sets it to the service's port (change the service's `port` instead)"}


class VariablesUpdate(Body):
    """Merged into the environment's variables, like Railway's raw editor: names left out are kept."""

    variables: dict[str, str | None] = Field(
        description=(
            '{"NAME": "value"} sets NAME, {"NAME": null} deletes it. Names: letters, digits and _, '
            f"not starting with a digit, at most {VARIABLE_NAME_MAX_LENGTH} characters; values at most "
            f"{VARIABLE_VALUE_MAX_BYTES} bytes (UTF-8); reserved: {', '.join(sorted(RESERVED_VARIABLES))}."
        ),
        json_schema_extra={
            "propertyNames": {"pattern": VARIABLE_NAME_PATTERN, "maxLength": VARIABLE_NAME_MAX_LENGTH}
        },
    )


class VariablesRead(BaseModel):
    environment: str
    variables: dict[str, str] = Field(description="set in this environment")
    inherited: dict[str, str] = Field(
        description="from the base environment chain (nearest wins); `variables` override them"
    )
