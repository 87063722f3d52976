"""Hostnames are unique: `<service slug>-<environment>.<apps domain>` names one service in one
environment, platform-wide. Slugs and environment names both hold hyphens, so two pairs can share a
hostname (`web` in `a-b`, `web-a` in `b`); Traefik's routes table would then refuse the second
route on every retry of its deploy. Such a pair is refused where it would be created instead."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Environment, Project, Service
from core.naming import hostname_label, label_owners, service_hostname
from domain.errors import Conflict

Pair = tuple[str, str]  # (service slug, environment name)


@dataclass(frozen=True)
class HostnameClash:
    """The existing service and environment that already have a pair's hostname."""

    hostname: str
    service: str
    environment: str
    project: str

    def owner(self) -> str:
        return f"service {self.service!r} in environment {self.environment!r} (project {self.project!r})"

    def reason(self) -> str:
        return f"hostname {self.hostname} is already {self.owner()}'s"


async def hostname_clashes(
    session: AsyncSession, pairs: Iterable[Pair], apps_domain: str
) -> dict[Pair, HostnameClash]:
    """For each new (service slug, environment name) pair whose hostname another existing pair
    has, that pair. A service has a hostname in every environment of its project."""
    wanted = {hostname_label(*pair): pair for pair in pairs}
    owners = {
        owner: label for label, pair in wanted.items() for owner in label_owners(label) if owner != pair
    }
    if not owners:
        return {}
    rows = await session.execute(
        select(Service.name, Service.slug, Environment.name, Project.name)
        .join(Environment, Environment.project_id == Service.project_id)
        .join(Project, Project.id == Service.project_id)
        .where(
            Service.slug.in_({slug for slug, _ in owners}),
            Environment.name.in_({environment for _, environment in owners}),
        )
    )
    clashes: dict[Pair, HostnameClash] = {}
    for service, slug, environment, project in rows:
        if (label := owners.get((slug, environment))) is not None:
            hostname = service_hostname(slug, environment, apps_domain)
            clashes[wanted[label]] = HostnameClash(hostname, service, environment, project)
    return clashes


async def refuse_hostname_clash(
    session: AsyncSession, pairs: Iterable[Pair], apps_domain: str, field: str, value: str
) -> None:
    """409 naming the other service and environment when one of `pairs` would take its hostname."""
    clashes = await hostname_clashes(session, pairs, apps_domain)
    if clashes:
        clash = clashes[min(clashes)]
        raise Conflict(
            f"{field}: {value!r} would give a second service the hostname {clash.hostname}, which is "
            f"{clash.owner()}'s; choose another {field}"
        )


async def services_with_free_hostnames(
    session: AsyncSession, services: Sequence[Service], environment: str, apps_domain: str
) -> tuple[list[Service], dict[str, str]]:
    """The services whose hostname in `environment` is theirs to take, and why each other is not
    (service name → reason)."""
    clashes = await hostname_clashes(session, [(s.slug, environment) for s in services], apps_domain)
    free = [service for service in services if (service.slug, environment) not in clashes]
    refused = {
        service.name: f"not deployed to {environment}: {clashes[(service.slug, environment)].reason()}"
        for service in services
        if (service.slug, environment) in clashes
    }
    return free, refused
