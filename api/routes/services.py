from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.errors import Conflict
from api.schemas import ServiceCreate, ServiceRead, ServiceUpdate, ServiceUrl
from api.store import (
    allocate_slug,
    audit,
    environment_by_name,
    get_or_404,
    routed_deployment,
    service_url,
    service_urls,
)
from core.models import Project, Service
from core.secrets import SecretBox
from core.settings import Settings

router = APIRouter(tags=["services"])


async def _read(session: SessionDep, settings: Settings, service: Service) -> ServiceRead:
    urls = await service_urls(session, service, settings.apps_domain, settings.edge_http_url)
    return ServiceRead.model_validate(
        {**_columns(service), "urls": urls, "has_repo_credential": service.repo_credential is not None}
    )


def _columns(service: Service) -> dict[str, object]:
    return {column: getattr(service, column) for column in Service.__table__.columns.keys()}


def _secret(settings: Settings) -> str | None:
    return settings.secret_key.get_secret_value() if settings.secret_key else None


def _redacted(token: SecretStr | None) -> str | None:
    return None if token is None else "********"


@router.post(
    "/v1/projects/{project_id}/services", status_code=status.HTTP_201_CREATED, operation_id="create_service"
)
async def create_service(
    project_id: str, body: ServiceCreate, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> ServiceRead:
    project = await get_or_404(session, Project, project_id)
    slug = await allocate_slug(session, body.name, project.name)
    fields = body.model_dump(exclude={"repo_token"})
    service = Service(project_id=project_id, slug=slug, **fields)
    if body.repo_token is not None:
        service.repo_credential = SecretBox(_secret(settings)).encrypt(body.repo_token.get_secret_value())
    session.add(service)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"name: a service named {body.name!r} already exists in this project") from None
    audit(session, actor, "service.create", service.id, **fields, repo_token=_redacted(body.repo_token))
    await session.commit()
    return await _read(session, settings, service)


@router.get("/v1/projects/{project_id}/services", operation_id="list_services")
async def list_services(
    project_id: str, session: SessionDep, settings: SettingsDep, _: CurrentActor
) -> list[ServiceRead]:
    await get_or_404(session, Project, project_id)
    services = await session.scalars(
        select(Service).where(Service.project_id == project_id).order_by(Service.created_at)
    )
    return [await _read(session, settings, s) for s in services]


@router.get("/v1/services/{service_id}", operation_id="get_service")
async def get_service(
    service_id: str, session: SessionDep, settings: SettingsDep, _: CurrentActor
) -> ServiceRead:
    return await _read(session, settings, await get_or_404(session, Service, service_id))


@router.patch("/v1/services/{service_id}", operation_id="update_service")
async def update_service(
    service_id: str, body: ServiceUpdate, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> ServiceRead:
    """Change the service's configuration; it takes effect with the next deployment."""
    service = await get_or_404(session, Service, service_id)
    changes = body.model_dump(exclude_unset=True, exclude={"repo_token"})
    if "repo_token" in body.model_fields_set:
        token = body.repo_token.get_secret_value() if body.repo_token else ""
        service.repo_credential = SecretBox(_secret(settings)).encrypt(token) if token else None
        changes["repo_token"] = _redacted(body.repo_token)
    if changes.get("repo_url"):
        service.image = None  # one source: the repository replaces the image
    if changes.get("image"):
        service.repo_url = service.repo_branch = None
    for field, value in changes.items():
        setattr(service, field, value)
    audit(session, actor, "service.update", service.id, **changes)
    await session.commit()
    return await _read(session, settings, service)


@router.get("/v1/services/{service_id}/url", operation_id="get_service_url")
async def get_service_url(
    service_id: str,
    session: SessionDep,
    settings: SettingsDep,
    _: CurrentActor,
    environment: str = "production",
) -> ServiceUrl:
    service = await get_or_404(session, Service, service_id)
    env = await environment_by_name(session, service.project_id, environment)
    return ServiceUrl(
        service_id=service.id,
        environment=env.name,
        url=service_url(service, env, settings.apps_domain, settings.edge_http_url),
        deployment_id=await routed_deployment(session, service.id, env.id),
    )
