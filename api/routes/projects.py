"""Projects and their environments (the operations: domain/projects.py)."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.schemas.projects import EnvironmentCreate, EnvironmentRead, ProjectCreate, ProjectRead, ProjectUpdate
from domain import projects
from domain.authorization import Permission, project_for

router = APIRouter(prefix="/v1/projects", tags=["projects"])


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_project")
async def create_project(body: ProjectCreate, session: SessionDep, actor: CurrentActor) -> ProjectRead:
    """Create a project; it gets a `production` environment, and its creator is its owner."""
    return ProjectRead.model_validate(await projects.create_project(session, actor, body.name))


@router.get("", operation_id="list_projects")
async def list_projects(session: SessionDep, actor: CurrentActor) -> list[ProjectRead]:
    """The projects you may read (an admin: all of them)."""
    return [ProjectRead.model_validate(p) for p in await projects.visible_projects(session, actor)]


@router.get("/{project_id}", operation_id="get_project")
async def get_project(project_id: str, session: SessionDep, actor: CurrentActor) -> ProjectRead:
    return ProjectRead.model_validate(await project_for(session, actor, Permission.READ, project_id))


@router.patch("/{project_id}", operation_id="update_project")
async def update_project(
    project_id: str, body: ProjectUpdate, session: SessionDep, actor: CurrentActor
) -> ProjectRead:
    """Project settings: pull-request previews on or off, and the environment they inherit from."""
    project = await project_for(session, actor, Permission.CONFIGURE, project_id)
    updated = await projects.update_project(
        session,
        actor,
        project,
        previews_enabled=body.previews_enabled,
        preview_base_environment=body.preview_base_environment,
    )
    return ProjectRead.model_validate(updated)


@router.get("/{project_id}/environments", operation_id="list_environments")
async def list_environments(
    project_id: str, session: SessionDep, actor: CurrentActor
) -> list[EnvironmentRead]:
    await project_for(session, actor, Permission.READ, project_id)
    environments = await projects.project_environments(session, project_id)
    return [EnvironmentRead.model_validate(e) for e in environments]


@router.post(
    "/{project_id}/environments", status_code=status.HTTP_201_CREATED, operation_id="create_environment"
)
async def create_environment(
    project_id: str, body: EnvironmentCreate, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> EnvironmentRead:
    project = await project_for(session, actor, Permission.CONFIGURE, project_id)
    environment = await projects.create_environment(session, settings, actor, project, body.name)
    return EnvironmentRead.model_validate(environment)
