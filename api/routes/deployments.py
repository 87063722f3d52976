from __future__ import annotations

from fastapi import APIRouter, Request, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from api.deploys import new_deployment, release_again, service_variables, submit
from api.deps import CurrentActor, SessionDep, SettingsDep, TemporalDep
from api.errors import Conflict
from api.releases import TemporalConnection
from api.scaling import NoServiceWorkflow, submit_scale
from api.schemas import DeploymentCreate, DeploymentRead, RollbackCreate, ScaleCreate
from api.store import audit, environment_by_name, get_or_404
from api.uploads import store_upload
from core.contracts import DeploymentStatus, SourceSpec
from core.models import Deployment, Environment, Service
from core.settings import Settings
from workflows.service import ScaleRequest

router = APIRouter(tags=["deployments"])


@router.post(
    "/v1/services/{service_id}/deployments",
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
    service = await get_or_404(session, Service, service_id)
    environment = await environment_by_name(session, service.project_id, body.environment)
    if body.image:
        service.image, service.repo_url, service.repo_branch = body.image, None, None
    if service.image:
        source = SourceSpec(kind="image")
    elif service.repo_url:
        source = SourceSpec(
            kind="repo",
            repo_url=service.repo_url,
            ref=body.ref or service.repo_branch,
            credential=service.repo_credential is not None,
        )
    else:
        raise HTTPException(
            422,
            "image: this service has no image and no repository; give `image`, "
            "or upload its code with `dockyard deploy PATH` (POST .../deployments/upload)",
        )
    return await _start(session, settings, temporal, actor, service, environment, source)


@router.post(
    "/v1/services/{service_id}/deployments/upload",
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
    service = await get_or_404(session, Service, service_id)
    env = await environment_by_name(session, service.project_id, environment)
    upload = await store_upload(request, settings, service.id)
    session.add(upload)
    source = SourceSpec(kind="upload", upload_id=upload.id)
    return await _start(session, settings, temporal, actor, service, env, source)


async def _start(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: str,
    service: Service,
    environment: Environment,
    source: SourceSpec,
) -> DeploymentRead:
    variables = await service_variables(session, settings, service, environment)
    pending = new_deployment(session, settings, service, environment, source, variables=variables)
    deployment = pending.deployment
    audit(session, actor, "deployment.create", deployment.id, service_id=service.id, source=deployment.source)
    await session.commit()
    await submit(session, settings, temporal, pending)
    await session.refresh(deployment)
    return DeploymentRead.model_validate(deployment)


@router.post(
    "/v1/services/{service_id}/rollback",
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
    """Release an earlier deployment again in its environment: its image by digest and its
    configuration snapshot, no build (Railway's rollback). The service's current variables apply."""
    service = await get_or_404(session, Service, service_id)
    target = await get_or_404(session, Deployment, body.deployment_id)
    if target.service_id != service.id:
        raise HTTPException(422, f"deployment_id: {target.id} is a deployment of another service")
    if target.image_ref is None:
        raise Conflict(
            f"deployment_id: {target.id} never produced an image ({target.status}"
            + (f" at {target.failed_step}" if target.failed_step else "")
            + "): there is nothing to roll back to"
        )
    environment = await get_or_404(session, Environment, target.environment_id)
    deployment = await release_again(session, settings, temporal, actor, service, environment, target)
    return DeploymentRead.model_validate(deployment)


@router.post(
    "/v1/services/{service_id}/scale", status_code=status.HTTP_202_ACCEPTED, operation_id="scale_service"
)
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
    Refused (409) while a release of the service is in progress. A deployment recorded before scaling
    in place existed is released again with the new count instead (a new deployment is answered)."""
    service = await get_or_404(session, Service, service_id)
    environment = await environment_by_name(session, service.project_id, body.environment)
    active = await _active(session, service, environment)
    if active is None:
        raise Conflict(f"environment: no ACTIVE deployment in {environment.name} to scale; deploy first")
    service.replicas = body.replicas
    if active.release_request is not None and await _scaled_in_place(temporal, active, body.replicas):
        audit(session, actor, "deployment.scale", active.id, service_id=service.id, replicas=body.replicas)
        await session.commit()
        await session.refresh(active)
        return DeploymentRead.model_validate(active)
    deployment = await release_again(
        session, settings, temporal, actor, service, environment, active, replicas=body.replicas
    )
    return DeploymentRead.model_validate(deployment)


async def _scaled_in_place(temporal: TemporalConnection, active: Deployment, replicas: int) -> bool:
    """Hand the scale to the service's entity workflow (nothing to do at the current count); False
    when that workflow is not running, so nothing can scale the deployment in place."""
    if active.config.get("replicas") == replicas:
        return True
    request = ScaleRequest(
        service_id=active.service_id,
        environment_id=active.environment_id,
        deployment_id=active.id,
        replicas=replicas,
    )
    try:
        await submit_scale(await temporal.get(), request)
    except NoServiceWorkflow:
        return False
    return True


async def _active(session: AsyncSession, service: Service, environment: Environment) -> Deployment | None:
    """The service's ACTIVE deployment in the environment, if it has an image to run again."""
    active = await session.scalar(
        select(Deployment).where(
            Deployment.service_id == service.id,
            Deployment.environment_id == environment.id,
            Deployment.status == DeploymentStatus.ACTIVE.value,
        )
    )
    return active if active is not None and active.image_ref is not None else None


@router.post(
    "/internal/services/{service_id}/heal", status_code=status.HTTP_202_ACCEPTED, include_in_schema=False
)
async def heal_service(
    service_id: str,
    environment_id: str,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    _: CurrentActor,
) -> DeploymentRead:
    """For the fleet watch: release the ACTIVE deployment again after a node that ran some of its
    replicas went DOWN; the scheduler places them on the nodes left."""
    service = await get_or_404(session, Service, service_id)
    environment = await get_or_404(session, Environment, environment_id)
    active = await _active(session, service, environment)
    if active is None:
        raise Conflict(f"no ACTIVE deployment of {service.id} in {environment.name} to heal")
    deployment = await release_again(
        session, settings, temporal, "control-plane", service, environment, active, action="deployment.heal"
    )
    return DeploymentRead.model_validate(deployment)


@router.get("/v1/services/{service_id}/deployments", operation_id="list_deployments")
async def list_deployments(
    service_id: str, session: SessionDep, _: CurrentActor, environment: str | None = None
) -> list[DeploymentRead]:
    """The service's deployments, newest first."""
    service = await get_or_404(session, Service, service_id)
    query = select(Deployment).where(Deployment.service_id == service.id)
    if environment is not None:
        env = await environment_by_name(session, service.project_id, environment)
        query = query.where(Deployment.environment_id == env.id)
    deployments = await session.scalars(query.order_by(Deployment.created_at.desc(), Deployment.id))
    return [DeploymentRead.model_validate(d) for d in deployments]


@router.get("/v1/deployments/{deployment_id}", operation_id="get_deployment")
async def get_deployment(deployment_id: str, session: SessionDep, _: CurrentActor) -> DeploymentRead:
    return DeploymentRead.model_validate(await get_or_404(session, Deployment, deployment_id))
