"""Projects and their environments."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from api.schemas.common import Body, EnvironmentName, ProjectName, Read


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
