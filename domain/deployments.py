"""What users and the control plane do with a service's deployments: deploy, roll back, scale, heal.

Each records what it does (the deployment, the audit event), commits, then hands the deployment to
Temporal (domain/deploys.py: the outbox makes a crash in between harmless).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import DeploymentConfig, DeploymentStatus, SourceSpec
from core.models import Deployment, Environment, Service
from core.settings import Settings
from domain.actors import Actor
from domain.audit import audit
from domain.deploys import new_deployment, release_again, service_variables, submit
from domain.errors import Conflict, Invalid
from domain.releases import TemporalConnection
from domain.scaling import NoServiceWorkflow, submit_scale
from domain.store import get_or_404
from workflows.service import ScaleRequest


def source_of(service: Service, ref: str | None = None) -> SourceSpec:
    """What a deploy of the service builds or runs: its image, or its repository at `ref` (default:
    its branch)."""
    if service.image:
        return SourceSpec(kind="image")
    if service.repo_url:
        return SourceSpec(
            kind="repo",
            repo_url=service.repo_url,
            ref=ref or service.repo_branch,
            credential=service.repo_credential is not None,
        )
    raise Invalid(
        "image",
        "this service has no image and no repository; give `image`, "
        "or upload its code with `dockyard deploy PATH` (POST .../deployments/upload)",
    )


async def deploy(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: Actor,
    service: Service,
    environment: Environment,
    source: SourceSpec,
) -> Deployment:
    """A new deployment of `source`, with the service's variables in the environment: recorded,
    audited and handed to Temporal. It is QUEUED (or FAILED at `submit` when Temporal refused it)."""
    variables = await service_variables(session, settings, service, environment)
    pending = new_deployment(session, settings, service, environment, source, variables=variables)
    deployment = pending.deployment
    audit(session, actor, "deployment.create", deployment.id, service_id=service.id, source=deployment.source)
    await session.commit()
    await submit(session, settings, temporal, pending)
    await session.refresh(deployment)
    return deployment


async def rollback(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: Actor,
    service: Service,
    deployment_id: str,
) -> Deployment:
    """Release an earlier deployment again in its environment: its image by digest and its
    configuration snapshot, no build. The service's current variables apply."""
    target = await get_or_404(session, Deployment, deployment_id)
    if target.service_id != service.id:
        raise Invalid("deployment_id", f"{target.id} is a deployment of another service")
    if target.image_ref is None:
        raise Conflict(
            f"deployment_id: {target.id} never produced an image ({target.status}"
            + (f" at {target.failed_step}" if target.failed_step else "")
            + "): there is nothing to roll back to"
        )
    environment = await get_or_404(session, Environment, target.environment_id)
    return await release_again(session, settings, temporal, actor, service, environment, target)


async def scale(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: Actor,
    service: Service,
    environment: Environment,
    replicas: int,
) -> Deployment:
    """Run `replicas` replicas of the ACTIVE deployment, in place (the service's entity workflow adds
    or drains replicas; the ACTIVE deployment is answered), or, for a deployment recorded before
    scaling in place existed, by releasing it again with the new count (the new one is answered)."""
    active = await active_deployment(session, service.id, environment.id)
    if active is None:
        raise Conflict(f"environment: no ACTIVE deployment in {environment.name} to scale; deploy first")
    service.replicas = replicas
    if active.release_request is not None and await _scaled_in_place(temporal, active, replicas):
        audit(session, actor, "deployment.scale", active.id, service_id=service.id, replicas=replicas)
        await session.commit()
        await session.refresh(active)
        return active
    return await release_again(
        session, settings, temporal, actor, service, environment, active, replicas=replicas
    )


async def heal(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: Actor,
    service_id: str,
    environment_id: str,
) -> Deployment:
    """Release the ACTIVE deployment again after some of its replicas were lost (their node DOWN, their
    container gone): the scheduler places a full set on the nodes left. Conflict when nothing is
    ACTIVE any more (a newer deploy took over)."""
    service = await get_or_404(session, Service, service_id)
    environment = await get_or_404(session, Environment, environment_id)
    active = await active_deployment(session, service.id, environment.id)
    if active is None:
        raise Conflict(f"no ACTIVE deployment of {service.id} in {environment.name} to heal")
    return await release_again(
        session, settings, temporal, actor, service, environment, active, action="deployment.heal"
    )


async def active_deployment(session: AsyncSession, service_id: str, environment_id: str) -> Deployment | None:
    """The service's ACTIVE deployment in the environment, if it has an image to run again."""
    active = await session.scalar(
        select(Deployment).where(
            Deployment.service_id == service_id,
            Deployment.environment_id == environment_id,
            Deployment.status == DeploymentStatus.ACTIVE.value,
        )
    )
    return active if active is not None and active.image_ref is not None else None


async def _scaled_in_place(temporal: TemporalConnection, active: Deployment, replicas: int) -> bool:
    """Hand the scale to the service's entity workflow (nothing to do at the current count); False
    when that workflow is not running, so nothing can scale the deployment in place."""
    if DeploymentConfig.model_validate(active.config).replicas == replicas:
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
