"""Projects and their environments: creating them, a project's settings, and which projects an actor
sees.

A project starts with a `production` environment, and its creator (a person) as its owner. An
environment's name is part of every hostname of the project's services (domain/hostnames.py), so a
new environment is refused when it would give a service another one's hostname.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Environment, Membership, Project, Service
from core.settings import Settings
from domain.actors import Actor, ActorKind, ProjectRole
from domain.audit import audit
from domain.authorization import visible_project_ids
from domain.errors import Conflict, Forbidden
from domain.hostnames import refuse_hostname_clash
from domain.store import environment_by_name

DEFAULT_ENVIRONMENT = "production"


async def create_project(session: AsyncSession, actor: Actor, name: str) -> Project:
    """The new project with its `production` environment, its creator its owner; committed."""
    if actor.kind is ActorKind.DEPLOY:
        raise Forbidden("a deploy token may not create projects")
    project = Project(name=name)
    session.add(project)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"name: a project named {name!r} already exists") from None
    session.add(Environment(project_id=project.id, name=DEFAULT_ENVIRONMENT))
    if actor.user_id is not None:
        session.add(Membership(project_id=project.id, user_id=actor.user_id, role=ProjectRole.OWNER.value))
    audit(session, actor, "project.create", project.id, name=project.name, project_id=project.id)
    await session.commit()
    return project


async def visible_projects(session: AsyncSession, actor: Actor) -> list[Project]:
    """The projects the actor may read (an admin: all of them), oldest first."""
    query = select(Project).order_by(Project.created_at)
    visible = await visible_project_ids(session, actor)
    if visible is not None:
        query = query.where(Project.id.in_(visible))
    return list(await session.scalars(query))


async def update_project(
    session: AsyncSession,
    actor: Actor,
    project: Project,
    *,
    previews_enabled: bool | None = None,
    preview_base_environment: str | None = None,
) -> Project:
    """Pull-request previews on or off, and the environment they inherit from (it must exist); None
    keeps a setting as it is. Committed."""
    given = {"previews_enabled": previews_enabled, "preview_base_environment": preview_base_environment}
    changes = {field: value for field, value in given.items() if value is not None}
    if preview_base_environment is not None:
        await environment_by_name(session, project.id, preview_base_environment)
    for field, value in changes.items():
        setattr(project, field, value)
    audit(session, actor, "project.update", project.id, **changes)
    await session.commit()
    return project


async def project_environments(session: AsyncSession, project_id: str) -> list[Environment]:
    """The project's environments, oldest first."""
    return list(
        await session.scalars(
            select(Environment).where(Environment.project_id == project_id).order_by(Environment.created_at)
        )
    )


async def create_environment(
    session: AsyncSession, settings: Settings, actor: Actor, project: Project, name: str
) -> Environment:
    """A new environment of the project, unless its name is taken there or would give one of the
    project's services another service's hostname; committed."""
    taken = select(Environment.id).where(Environment.project_id == project.id, Environment.name == name)
    if await session.scalar(taken):
        raise _environment_exists(name)
    slugs = await session.scalars(select(Service.slug).where(Service.project_id == project.id))
    await refuse_hostname_clash(session, [(slug, name) for slug in slugs], settings.apps_domain, "name", name)
    environment = Environment(project_id=project.id, name=name)
    session.add(environment)
    try:
        await session.flush()
    except IntegrityError:  # created meanwhile by a concurrent request
        raise _environment_exists(name) from None
    audit(session, actor, "environment.create", environment.id, name=name, project_id=project.id)
    await session.commit()
    return environment


def _environment_exists(name: str) -> Conflict:
    return Conflict(f"name: environment {name!r} already exists in this project")
