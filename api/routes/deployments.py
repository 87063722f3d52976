"""Deployments: deploy (an image, a repository, an uploaded directory), roll back, scale, and reading
them (the operations: domain/deployments.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from sqlalchemy import select

from api.deps import CurrentActor, SessionDep, SettingsDep, TemporalDep
from api.schemas.deployments import DeploymentCreate, DeploymentRead, RollbackCreate, ScaleCreate
from api.uploads import store_upload
from core.contracts import SourceSpec
from core.models import Deployment
from domain import deployments
from domain.authorization import Permission, deployment_for, service_for, service_in_environment
from domain.store import environment_by_name

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])
service_router = APIRouter(prefix="/v1/services/{service_id}", tags=["deployments"])


@service_router.post(
    "/deployments",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="create_deployment",
)
async def create_deployment(
    service_id: str,
    body: DeploymentCreate,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    actor: CurrentActor,
) -> DeploymentRead:
    """Deploy the service to an environment: its image (or `image`, which becomes the service's
    image), or its repository at `ref` (default: the service's branch), built first.

    Answers at once with the QUEUED deployment; follow it with `GET /v1/deployments/{id}`."""
    service, environment = await service_in_environment(
        session, actor, Permission.DEPLOY, service_id, body.environment
    )
    if body.image:
        service.image, service.repo_url, service.repo_branch = body.image, None, None
    source = deployments.source_of(service, body.ref)
    deployment = await deployments.deploy(session, settings, temporal, actor, service, environment, source)
    return DeploymentRead.model_validate(deployment)


@service_router.post(
    "/deployments/upload",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="upload_deployment",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_deployment(
    service_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    actor: CurrentActor,
    environment: str = "production",
) -> DeploymentRead:
    """Deploy a directory (a gzipped tarball in the body), built like a repository: what
    `dockyard deploy PATH` does, like `railway up`."""
    service, env = await service_in_environment(session, actor, Permission.DEPLOY, service_id, environment)
    upload = await store_upload(request, settings, service.id)
    session.add(upload)
    source = SourceSpec(kind="upload", upload_id=upload.id)
    deployment = await deployments.deploy(session, settings, temporal, actor, service, env, source)
    return DeploymentRead.model_validate(deployment)


@service_router.post(
    "/rollback",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="rollback_service",
)
async def rollback_service(
    service_id: str,
    body: RollbackCreate,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    actor: CurrentActor,
) -> DeploymentRead:
    """Redeploy an earlier deployment in its environment: its image by digest and its
    configuration snapshot, no build (Railway's rollback). The service's current variables apply."""
    service = await service_for(session, actor, Permission.DEPLOY, service_id)
    deployment = await deployments.rollback(session, settings, temporal, actor, service, body.deployment_id)
    return DeploymentRead.model_validate(deployment)


@service_router.post("/scale", status_code=status.HTTP_202_ACCEPTED, operation_id="scale_service")
async def scale_service(
    service_id: str,
    body: ScaleCreate,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    actor: CurrentActor,
) -> DeploymentRead:
    """Run `replicas` replicas of the ACTIVE deployment, in place: replicas are added beside the running
    ones (the same image, variables and configuration) or the highest-numbered ones are taken out of
    the route and drained; the others keep running untouched. Answers the ACTIVE deployment at once
    (the scale runs on; its replica count changes when it is done), and later deploys keep the count.
    Refused (409) while a deploy of the service is in progress. A deployment recorded before scaling
    in place existed is redeployed with the new count instead (a new deployment is answered)."""
    service, environment = await service_in_environment(
        session, actor, Permission.DEPLOY, service_id, body.environment
    )
    deployment = await deployments.scale(
        session, settings, temporal, actor, service, environment, body.replicas
    )
    return DeploymentRead.model_validate(deployment)


@service_router.get("/deployments", operation_id="list_deployments")
async def list_deployments(
    service_id: str, session: SessionDep, actor: CurrentActor, environment: str | None = None
) -> list[DeploymentRead]:
    """The service's deployments, newest first."""
    service = await service_for(session, actor, Permission.READ, service_id)
    query = select(Deployment).where(Deployment.service_id == service.id)
    if environment is not None:
        env = await environment_by_name(session, service.project_id, environment)
        query = query.where(Deployment.environment_id == env.id)
    deployments = await session.scalars(query.order_by(Deployment.created_at.desc(), Deployment.id))
    return [DeploymentRead.model_validate(d) for d in deployments]


@router.get("/{deployment_id}", operation_id="get_deployment")
async def get_deployment(deployment_id: str, session: SessionDep, actor: CurrentActor) -> DeploymentRead:
    return DeploymentRead.model_validate(await deployment_for(session, actor, Permission.READ, deployment_id))
