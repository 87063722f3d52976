"""Services: creating one in a project and changing its configuration, its repository credential
included (a change takes effect with the next deployment).

A service has one source: an image, a repository, or uploads. A new `repo_url` drops the image and a
new `image` the repository. Its name is unique in its project, and its slug gives it a hostname in
every environment of the project (domain/hostnames.py refuses a slug that would take another
service's). The repository URL and the credential are checked as domain/repositories.py says; the
credential is stored encrypted, and only redacted in the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Environment, Project, Service
from core.secrets import secret_box
from core.settings import Settings
from domain.actors import Actor
from domain.audit import audit
from domain.errors import Conflict, Invalid, Unavailable
from domain.hostnames import refuse_hostname_clash
from domain.repositories import (
    check_repository,
    credential_follows,
    credential_kind,
    is_ssh_url,
    repository_host,
)
from domain.store import allocate_slug

# A request's repository credential: the fields it set, each the secret, or "" (or None) to remove
# the stored one. A service keeps one credential, so either replaces the other.
CREDENTIAL_FIELDS = ("repo_token", "repo_deploy_key")
Credentials = Mapping[str, str | None]


async def create_service(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    project: Project,
    fields: Mapping[str, Any],
    credentials: Credentials,
) -> Service:
    """A new service of the project with these column values (`name` among them) and the credential
    given, if any; committed."""
    name = fields["name"]
    if await session.scalar(select(Service.id).where(Service.project_id == project.id, Service.name == name)):
        raise _name_taken(name)
    slug = await allocate_slug(session, name, project.name)
    environments = await session.scalars(select(Environment.name).where(Environment.project_id == project.id))
    await refuse_hostname_clash(
        session, [(slug, environment) for environment in environments], settings.apps_domain, "name", name
    )
    credential = _given_credential(credentials)
    if fields.get("repo_url"):
        check_repository(fields["repo_url"], settings, with_credential=credential is not None)
    service = Service(project_id=project.id, slug=slug, **fields)
    if credential is not None:
        service.repo_credential = secret_box(settings).encrypt(credential)
    session.add(service)
    try:
        await session.flush()
    except IntegrityError:
        raise _name_taken(name) from None
    redacted = {field: _redacted(credentials.get(field)) for field in CREDENTIAL_FIELDS}
    audit(session, actor, "service.create", service.id, **fields, **redacted)
    await session.commit()
    return service


def _name_taken(name: str) -> Conflict:
    return Conflict(f"name: a service named {name!r} already exists in this project")


async def project_services(session: AsyncSession, project_id: str) -> list[Service]:
    """The project's services, oldest first."""
    return list(
        await session.scalars(
            select(Service).where(Service.project_id == project_id).order_by(Service.created_at)
        )
    )


async def update_service(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    service: Service,
    changes: Mapping[str, Any],
    credentials: Credentials,
) -> list[str]:
    """Set the columns in `changes` (only those the request set) and the credential fields given;
    committed. Answers what the change did besides what was asked (a credential dropped)."""
    notices: list[str] = []
    if changes.get("repo_url") and not any(field in credentials for field in CREDENTIAL_FIELDS):
        check_repository(changes["repo_url"], settings, with_credential=False)
    redacted = _update_credential(service, changes, credentials, settings, notices)
    if changes.get("repo_url"):
        service.image = None  # one source: the repository replaces the image
    if changes.get("image"):
        service.repo_url = service.repo_branch = None
    for field, value in changes.items():
        setattr(service, field, value)
    audit(session, actor, "service.update", service.id, **changes, **redacted)
    await session.commit()
    return notices


def _redacted(secret: str | None) -> str | None:
    """For the audit log: whether a credential was set ("********") or removed ("")."""
    return None if secret is None else "********" if secret else ""


def _given_credential(credentials: Credentials) -> str | None:
    """The token or deploy key given (the request's schema lets at most one be non-empty), or None."""
    for field in ("repo_deploy_key", "repo_token"):
        if secret := credentials.get(field):
            return secret
    return None


def _stored_credential(service: Service, settings: Settings) -> str | None:
    if service.repo_credential is None:
        return None
    try:
        return secret_box(settings).decrypt(service.repo_credential)
    except ValueError as exc:  # stored with another key: the operator must restore the key
        raise Unavailable(f"repo_credential: {exc}") from None


def _check_deploy_key_url(repo_url: str | None, credential: str | None) -> None:
    """A deploy key clones over SSH only: refuse a change that leaves one beside another URL."""
    if credential and credential_kind(credential) == "deploy_key" and not is_ssh_url(repo_url):
        raise Invalid(
            "repo_url",
            f"a deploy key clones over SSH; give an ssh:// or git@host:path URL "
            f'(got {repo_url!r}), or replace the key with repo_token (repo_deploy_key: "" removes it)',
        )


def _update_credential(
    service: Service,
    changes: Mapping[str, Any],
    credentials: Credentials,
    settings: Settings,
    notices: list[str],
) -> dict[str, str | None]:
    """Store the token or deploy key given ("" removes it), checked against the URL the service will
    have; answer them redacted. A stored credential does not follow the service to another host
    (domain/repositories.py): it is dropped, and `notices` says so."""
    given = [field for field in CREDENTIAL_FIELDS if field in credentials]
    new_url = changes.get("repo_url")
    if given:
        credential = _given_credential(credentials)
    elif new_url:
        credential = _stored_credential(service, settings)
        if credential is not None and not credential_follows(service.repo_url, new_url):
            credential, service.repo_credential = None, None
            notices.append(
                f"repo_credential: dropped; it was given for {repository_host(service.repo_url or '')}, "
                f"and the repository is now on {repository_host(new_url)}: give repo_token (or "
                "repo_deploy_key) for it"
            )
            return {"repo_credential": "dropped: another host"}
    else:
        return {}
    repo_url = None if changes.get("image") else changes.get("repo_url", service.repo_url)
    if repo_url:
        check_repository(repo_url, settings, with_credential=bool(credential))
    _check_deploy_key_url(repo_url, credential)
    if given:
        service.repo_credential = secret_box(settings).encrypt(credential) if credential else None
    return {field: _redacted(credentials.get(field)) for field in given}
