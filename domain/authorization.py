"""Who may do what: decided here, once, for every caller (the API's routes, the CLI through them, the
control plane's own work).

    admin             everything: nodes, pools, people, every project
    member            the projects they are a member of, with their role there:
        owner         everything in the project, its members and deploy tokens included
        developer     read, deploy (deploy, roll back, scale), settings (services, environments,
                      webhooks), variables (read and write)
        viewer        read; never variable values or credentials
    deploy token      deploy and read its project only
    control plane     everything (the fleet watch, node pools)

A person who is not a member of a project is answered as if it did not exist (NotFound), so that
projects do not leak across teams; a member whose role does not allow the action gets Forbidden.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Deployment, Environment, Membership, Project, Service
from domain.actors import Actor, ActorKind, ProjectRole
from domain.context import note_project
from domain.errors import Forbidden, NotFound
from domain.store import environment_by_name


class Permission(StrEnum):
    READ = "read"  # the project, its environments, services, deployments, build logs (not variables)
    DEPLOY = "deploy"  # deploy, roll back, scale
    CONFIGURE = "configure"  # create and change services and environments, webhook settings
    READ_SECRETS = "read secrets"  # variable values, webhook secrets
    WRITE_VARIABLES = "write variables"
    MANAGE = "manage"  # members, deploy tokens, the project's own settings


ROLE_PERMISSIONS: dict[ProjectRole, frozenset[Permission]] = {
    ProjectRole.OWNER: frozenset(Permission),
    ProjectRole.DEVELOPER: frozenset(
        {
            Permission.READ,
            Permission.DEPLOY,
            Permission.CONFIGURE,
            Permission.READ_SECRETS,
            Permission.WRITE_VARIABLES,
        }
    ),
    ProjectRole.VIEWER: frozenset({Permission.READ}),
}
DEPLOY_TOKEN_PERMISSIONS = frozenset({Permission.READ, Permission.DEPLOY})


def require_internal(actor: Actor, service: str) -> None:
    """The control plane's internal routes: the service identity they are for, or an admin."""
    if actor.is_admin or (actor.kind is ActorKind.SERVICE and actor.label == f"service:{service}"):
        return
    raise Forbidden(f"only the {service} service identity (or an admin) may call this")


def require_admin(actor: Actor, what: str = "this") -> None:
    """Platform operations: nodes, pools, people."""
    if not actor.is_admin:
        raise Forbidden(f"only an admin may do {what}")


async def project_role(session: AsyncSession, actor: Actor, project_id: str) -> ProjectRole | None:
    """The actor's role in the project (an admin and the control plane are owners everywhere)."""
    if actor.is_admin or actor.kind is ActorKind.CONTROL:
        return ProjectRole.OWNER
    if actor.kind is ActorKind.USER and actor.user_id is not None:
        role = await session.scalar(
            select(Membership.role).where(
                Membership.project_id == project_id, Membership.user_id == actor.user_id
            )
        )
        return ProjectRole(role) if role else None
    return None


async def authorize(session: AsyncSession, actor: Actor, permission: Permission, project_id: str) -> None:
    """Raise unless the actor may do `permission` in the project (NotFound when it may not even know
    that the project exists)."""
    note_project(project_id)
    if actor.kind is ActorKind.DEPLOY:
        if actor.project_id != project_id:
            raise NotFound("project", project_id)
        if permission not in DEPLOY_TOKEN_PERMISSIONS:
            raise Forbidden(f"a deploy token may only read and deploy, not {permission}")
        return
    role = await project_role(session, actor, project_id)
    if role is None:
        raise NotFound("project", project_id)
    if (actor.is_admin or actor.kind is ActorKind.CONTROL) and await session.get(Project, project_id) is None:
        raise NotFound("project", project_id)  # owners everywhere, of the projects that exist
    if permission not in ROLE_PERMISSIONS[role]:
        raise Forbidden(f"a project {role} may not {permission} (ask an owner of the project)")


async def visible_project_ids(session: AsyncSession, actor: Actor) -> list[str] | None:
    """The projects the actor may read; None: all of them."""
    if actor.is_admin or actor.kind is ActorKind.CONTROL:
        return None
    if actor.kind is ActorKind.DEPLOY:
        return [actor.project_id] if actor.project_id else []
    if actor.user_id is None:
        return []
    return list(
        await session.scalars(select(Membership.project_id).where(Membership.user_id == actor.user_id))
    )


# --- the object a request names, once authorized ---------------------------------------------------


async def project_for(
    session: AsyncSession, actor: Actor, permission: Permission, project_id: str
) -> Project:
    await authorize(session, actor, permission, project_id)
    project = await session.get(Project, project_id)
    if project is None:
        raise NotFound("project", project_id)
    return project


async def service_for(
    session: AsyncSession, actor: Actor, permission: Permission, service_id: str
) -> Service:
    service = await session.get(Service, service_id)
    if service is None:
        raise NotFound("service", service_id)
    await _authorize_or_hide(session, actor, permission, service.project_id, "service", service_id)
    return service


async def service_in_environment(
    session: AsyncSession, actor: Actor, permission: Permission, service_id: str, environment: str
) -> tuple[Service, Environment]:
    """The service (if the actor may) and its project's environment of that name."""
    service = await service_for(session, actor, permission, service_id)
    return service, await environment_by_name(session, service.project_id, environment)


async def environment_for(
    session: AsyncSession, actor: Actor, permission: Permission, environment_id: str
) -> Environment:
    environment = await session.get(Environment, environment_id)
    if environment is None:
        raise NotFound("environment", environment_id)
    await _authorize_or_hide(
        session, actor, permission, environment.project_id, "environment", environment_id
    )
    return environment


async def deployment_for(
    session: AsyncSession, actor: Actor, permission: Permission, deployment_id: str
) -> Deployment:
    deployment = await session.get(Deployment, deployment_id)
    if deployment is None:
        raise NotFound("deployment", deployment_id)
    service = await session.get(Service, deployment.service_id)
    project_id = service.project_id if service is not None else ""
    await _authorize_or_hide(session, actor, permission, project_id, "deployment", deployment_id)
    return deployment


async def _authorize_or_hide(
    session: AsyncSession, actor: Actor, permission: Permission, project_id: str, kind: str, identifier: str
) -> None:
    """As `authorize`, but the object itself is what is not found for an outsider."""
    try:
        await authorize(session, actor, permission, project_id)
    except NotFound:
        raise NotFound(kind, identifier) from None
