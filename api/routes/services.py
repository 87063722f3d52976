from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.schemas.services import (
    ServiceCreate,
    ServiceRead,
    ServiceUpdate,
    ServiceUrl,
    credential_kind,
    is_ssh_url,
)
from core.models import Environment, Service
from core.secrets import secret_box
from core.settings import Settings
from domain.audit import audit
from domain.authorization import Permission, project_for, service_for
from domain.errors import Conflict
from domain.hostnames import refuse_hostname_clash
from domain.repositories import check_repository, credential_follows, repository_host
from domain.store import allocate_slug, environment_by_name, routed_deployment, service_url, service_urls

router = APIRouter(prefix="/v1/services", tags=["services"])
project_router = APIRouter(prefix="/v1/projects/{project_id}/services", tags=["services"])

CREDENTIAL_FIELDS = ("repo_token", "repo_deploy_key")


async def _read(
    session: SessionDep, settings: Settings, service: Service, notices: list[str] | None = None
) -> ServiceRead:
    urls = await service_urls(session, service, settings.apps_domain, settings.edge_http_url)
    return ServiceRead.model_validate(
        {
            **_columns(service),
            "urls": urls,
            "has_repo_credential": service.repo_credential is not None,
            "notices": notices or [],
        }
    )


def _columns(service: Service) -> dict[str, object]:
    return {column: getattr(service, column) for column in Service.__table__.columns.keys()}


def _redacted(secret: SecretStr | None) -> str | None:
    """For the audit log: whether a credential was set ("********") or removed ("")."""
    return None if secret is None else "********" if secret.get_secret_value() else ""


def _given_credential(body: ServiceCreate | ServiceUpdate) -> str | None:
    """The token or deploy key in the body (the schema lets at most one be non-empty), or None."""
    for secret in (body.repo_deploy_key, body.repo_token):
        if secret is not None and secret.get_secret_value():
            return secret.get_secret_value()
    return None


def _stored_credential(service: Service, settings: Settings) -> str | None:
    if service.repo_credential is None:
        return None
    try:
        return secret_box(settings).decrypt(service.repo_credential)
    except ValueError as exc:  # stored with another key: the operator must restore the key
        raise HTTPException(503, f"repo_credential: {exc}") from None


def _check_deploy_key_url(repo_url: str | None, credential: str | None) -> None:
    """A deploy key clones over SSH only: refuse a change that leaves one beside another URL."""
    if credential and credential_kind(credential) == "deploy_key" and not is_ssh_url(repo_url):
        raise HTTPException(
            422,
            f"repo_url: a deploy key clones over SSH; give an ssh:// or git@host:path URL "
            f'(got {repo_url!r}), or replace the key with repo_token (repo_deploy_key: "" removes it)',
        )


def _update_credential(
    service: Service, body: ServiceUpdate, changes: dict[str, Any], settings: Settings, notices: list[str]
) -> dict[str, str | None]:
    """Store the body's token or deploy key (one credential per service: either replaces the other,
    "" removes it), checked against the URL the service will have; answer them redacted. A stored
    credential does not follow the service to another host (domain/repositories.py): it is dropped,
    and `notices` says so."""
    given = [field for field in CREDENTIAL_FIELDS if field in body.model_fields_set]
    new_url = changes.get("repo_url")
    if given:
        credential = _given_credential(body)
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
    return {field: _redacted(getattr(body, field)) for field in given}


@project_router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_service")
async def create_service(
    project_id: str, body: ServiceCreate, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> ServiceRead:
    project = await project_for(session, actor, Permission.CONFIGURE, project_id)
    if await session.scalar(
        select(Service.id).where(Service.project_id == project_id, Service.name == body.name)
    ):
        raise _name_taken(body.name)
    slug = await allocate_slug(session, body.name, project.name)
    environments = await session.scalars(select(Environment.name).where(Environment.project_id == project_id))
    await refuse_hostname_clash(
        session, [(slug, name) for name in environments], settings.apps_domain, "name", body.name
    )
    if body.repo_url:
        check_repository(body.repo_url, settings, with_credential=_given_credential(body) is not None)
    fields = body.model_dump(exclude=set(CREDENTIAL_FIELDS))
    service = Service(project_id=project_id, slug=slug, **fields)
    if (credential := _given_credential(body)) is not None:
        service.repo_credential = secret_box(settings).encrypt(credential)
    session.add(service)
    try:
        await session.flush()
    except IntegrityError:
        raise _name_taken(body.name) from None
    redacted = {field: _redacted(getattr(body, field)) for field in CREDENTIAL_FIELDS}
    audit(session, actor, "service.create", service.id, **fields, **redacted)
    await session.commit()
    return await _read(session, settings, service)


def _name_taken(name: str) -> Conflict:
    return Conflict(f"name: a service named {name!r} already exists in this project")


@project_router.get("", operation_id="list_services")
async def list_services(
    project_id: str, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> list[ServiceRead]:
    await project_for(session, actor, Permission.READ, project_id)
    services = await session.scalars(
        select(Service).where(Service.project_id == project_id).order_by(Service.created_at)
    )
    return [await _read(session, settings, s) for s in services]


@router.get("/{service_id}", operation_id="get_service")
async def get_service(
    service_id: str, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> ServiceRead:
    return await _read(session, settings, await service_for(session, actor, Permission.READ, service_id))


@router.patch("/{service_id}", operation_id="update_service")
async def update_service(
    service_id: str, body: ServiceUpdate, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> ServiceRead:
    """Change the service's configuration; it takes effect with the next deployment."""
    service = await service_for(session, actor, Permission.CONFIGURE, service_id)
    changes = body.model_dump(exclude_unset=True, exclude=set(CREDENTIAL_FIELDS))
    notices: list[str] = []
    if changes.get("repo_url") and not any(field in body.model_fields_set for field in CREDENTIAL_FIELDS):
        check_repository(changes["repo_url"], settings, with_credential=False)
    redacted = _update_credential(service, body, changes, settings, notices)
    if changes.get("repo_url"):
        service.image = None  # one source: the repository replaces the image
    if changes.get("image"):
        service.repo_url = service.repo_branch = None
    for field, value in changes.items():
        setattr(service, field, value)
    audit(session, actor, "service.update", service.id, **changes, **redacted)
    await session.commit()
    return await _read(session, settings, service, notices)


@router.get("/{service_id}/url", operation_id="get_service_url")
async def get_service_url(
    service_id: str,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    environment: str = "production",
) -> ServiceUrl:
    service = await service_for(session, actor, Permission.READ, service_id)
    env = await environment_by_name(session, service.project_id, environment)
    return ServiceUrl(
        service_id=service.id,
        environment=env.name,
        url=service_url(service, env, settings.apps_domain, settings.edge_http_url),
        deployment_id=await routed_deployment(session, service.id, env.id),
    )
