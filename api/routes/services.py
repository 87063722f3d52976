"""Services: creating and changing them, their repository credential included, and their URLs (the
operations: domain/services.py)."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CurrentActor, SessionDep, SettingsDep
from api.schemas.services import ServiceCreate, ServiceRead, ServiceUpdate, ServiceUrl
from core.models import Service
from core.settings import Settings
from domain import services
from domain.authorization import Permission, project_for, service_for, service_in_environment
from domain.services import CREDENTIAL_FIELDS
from domain.store import routed_deployment, service_url, service_urls

router = APIRouter(prefix="/v1/services", tags=["services"])
project_router = APIRouter(prefix="/v1/projects/{project_id}/services", tags=["services"])


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


def _credentials(body: ServiceCreate | ServiceUpdate) -> services.Credentials:
    """The credential fields the body set, their secrets revealed for the domain to store."""
    secrets = {field: getattr(body, field) for field in CREDENTIAL_FIELDS if field in body.model_fields_set}
    return {field: None if secret is None else secret.get_secret_value() for field, secret in secrets.items()}


@project_router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_service")
async def create_service(
    project_id: str, body: ServiceCreate, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> ServiceRead:
    project = await project_for(session, actor, Permission.CONFIGURE, project_id)
    fields = body.model_dump(exclude=set(CREDENTIAL_FIELDS))
    service = await services.create_service(session, settings, actor, project, fields, _credentials(body))
    return await _read(session, settings, service)


@project_router.get("", operation_id="list_services")
async def list_services(
    project_id: str, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> list[ServiceRead]:
    await project_for(session, actor, Permission.READ, project_id)
    return [await _read(session, settings, s) for s in await services.project_services(session, project_id)]


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
    notices = await services.update_service(session, settings, actor, service, changes, _credentials(body))
    return await _read(session, settings, service, notices)


@router.get("/{service_id}/url", operation_id="get_service_url")
async def get_service_url(
    service_id: str,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    environment: str = "production",
) -> ServiceUrl:
    service, env = await service_in_environment(session, actor, Permission.READ, service_id, environment)
    return ServiceUrl(
        service_id=service.id,
        environment=env.name,
        url=service_url(service, env, settings.apps_domain, settings.edge_http_url),
        deployment_id=await routed_deployment(session, service.id, env.id),
    )
