from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.schemas.projects import EnvironmentCreate, EnvironmentRead, ProjectCreate, ProjectRead, ProjectUpdate
from core.models import Environment, Membership, Project, Service
from domain.actors import ActorKind, ProjectRole
from domain.audit import audit
from domain.authorization import Permission, project_for, visible_project_ids
from domain.errors import Conflict, Forbidden
from domain.hostnames import refuse_hostname_clash
from domain.store import environment_by_name

router = APIRouter(prefix="/v1/projects", tags=["projects"])

DEFAULT_ENVIRONMENT = "production"


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_project")
async def create_project(body: ProjectCreate, session: SessionDep, actor: CurrentActor) -> ProjectRead:
    """Create a project; it gets a `production` environment, and its creator is its owner."""
    if actor.kind is ActorKind.DEPLOY:
        raise Forbidden("a deploy token may not create projects")
    project = Project(name=body.name)
    session.add(project)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"name: a project named {body.name!r} already exists") from None
    session.add(Environment(project_id=project.id, name=DEFAULT_ENVIRONMENT))
    if actor.user_id is not None:
        session.add(Membership(project_id=project.id, user_id=actor.user_id, role=ProjectRole.OWNER.value))
    audit(session, actor, "project.create", project.id, name=project.name, project_id=project.id)
    await session.commit()
    return ProjectRead.model_validate(project)


@router.get("", operation_id="list_projects")
async def list_projects(session: SessionDep, actor: CurrentActor) -> list[ProjectRead]:
    """The projects you may read (an admin: all of them)."""
    query = select(Project).order_by(Project.created_at)
    visible = await visible_project_ids(session, actor)
    if visible is not None:
        query = query.where(Project.id.in_(visible))
    projects = await session.scalars(query)
    return [ProjectRead.model_validate(p) for p in projects]


@router.get("/{project_id}", operation_id="get_project")
async def get_project(project_id: str, session: SessionDep, actor: CurrentActor) -> ProjectRead:
    return ProjectRead.model_validate(await project_for(session, actor, Permission.READ, project_id))


@router.patch("/{project_id}", operation_id="update_project")
async def update_project(
    project_id: str, body: ProjectUpdate, session: SessionDep, actor: CurrentActor
) -> ProjectRead:
    """Project settings: pull-request previews on or off, and the environment they inherit from."""
    project = await project_for(session, actor, Permission.CONFIGURE, project_id)
    given = body.model_dump(exclude_unset=True)
    changes = {field: value for field, value in given.items() if value is not None}
    if "preview_base_environment" in changes:
        await environment_by_name(session, project.id, changes["preview_base_environment"])
    for field, value in changes.items():
        setattr(project, field, value)
    audit(session, actor, "project.update", project.id, **changes)
    await session.commit()
    return ProjectRead.model_validate(project)


@router.get("/{project_id}/environments", operation_id="list_environments")
async def list_environments(
    project_id: str, session: SessionDep, actor: CurrentActor
) -> list[EnvironmentRead]:
    await project_for(session, actor, Permission.READ, project_id)
    environments = await session.scalars(
        select(Environment).where(Environment.project_id == project_id).order_by(Environment.created_at)
    )
    return [EnvironmentRead.model_validate(e) for e in environments]


@router.post(
    "/{project_id}/environments", status_code=status.HTTP_201_CREATED, operation_id="create_environment"
)
async def create_environment(
    project_id: str, body: EnvironmentCreate, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> EnvironmentRead:
    await project_for(session, actor, Permission.CONFIGURE, project_id)
    taken = select(Environment.id).where(Environment.project_id == project_id, Environment.name == body.name)
    if await session.scalar(taken):
        raise _environment_exists(body.name)
    slugs = await session.scalars(select(Service.slug).where(Service.project_id == project_id))
    await refuse_hostname_clash(
        session, [(slug, body.name) for slug in slugs], settings.apps_domain, "name", body.name
    )
    environment = Environment(project_id=project_id, name=body.name)
    session.add(environment)
    try:
        await session.flush()
    except IntegrityError:
        raise _environment_exists(body.name) from None
    audit(session, actor, "environment.create", environment.id, name=body.name, project_id=project_id)
    await session.commit()
    return EnvironmentRead.model_validate(environment)


def _environment_exists(name: str) -> Conflict:
    return Conflict(f"name: environment {name!r} already exists in this project")
