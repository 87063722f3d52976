"""Lookups the routes and operations share: 404s with the kind and id, service URLs and slugs.

The audit log is domain/audit.py."""

from __future__ import annotations

import secrets
from typing import TypeVar
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Base, Environment, Route, Service
from core.naming import service_hostname, service_slug_candidates
from domain.errors import NotFound

M = TypeVar("M", bound=Base)


async def get_or_404(session: AsyncSession, model: type[M], identifier: str) -> M:
    instance = await session.get(model, identifier)
    if instance is None:
        raise NotFound(model.__name__.lower(), identifier)
    return instance


async def environment_by_name(session: AsyncSession, project_id: str, name: str) -> Environment:
    environment = await session.scalar(
        select(Environment).where(Environment.project_id == project_id, Environment.name == name)
    )
    if environment is None:
        raise NotFound("environment", name)
    return environment


async def service_urls(
    session: AsyncSession, service: Service, apps_domain: str, edge_url: str
) -> dict[str, str]:
    environments = await session.scalars(
        select(Environment).where(Environment.project_id == service.project_id)
    )
    return {env.name: service_url(service, env, apps_domain, edge_url) for env in environments}


def service_url(service: Service, environment: Environment, apps_domain: str, edge_url: str) -> str:
    edge = urlsplit(edge_url)
    host = service_hostname(service.slug, environment.name, apps_domain)
    return f"{edge.scheme}://{host}{f':{edge.port}' if edge.port else ''}"


async def allocate_slug(session: AsyncSession, service_name: str, project_name: str) -> str:
    """The first free hostname label for a new service (see core.naming.service_slug_candidates)."""
    candidates = service_slug_candidates(service_name, project_name, secrets.token_hex(3))
    taken = set(await session.scalars(select(Service.slug).where(Service.slug.in_(candidates))))
    return next(slug for slug in candidates if slug not in taken)


async def routed_deployment(session: AsyncSession, service_id: str, environment_id: str) -> str | None:
    route = await session.get(Route, (service_id, environment_id))
    return route.deployment_id if route else None
