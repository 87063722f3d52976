"""A service's deployments: what users and the control plane do with them (deploy, roll back,
scale, heal) and how one is recorded.

A deployment is one version of a service in an environment; deploying it is the DeployWorkflow that
builds it (or pulls its image) and replaces the replicas. A redeploy deploys an earlier deployment
again as a new one: its image by digest and its configuration (rollback, scale, heal, drain).

Recording and starting are two phases, so that a caller can record several deployments (and what
caused them) in one transaction before any of them starts:

    pending = new_deployment(session, settings, service, environment, source, commit)
    await session.commit()    # recorded with its DeployRequest: the outbox (domain/submissions.py)
    await submit(session, settings, temporal, pending)   # FAILED at `submit` only if Temporal refuses

A crash between the two, or an answer from Temporal that never arrives, leaves the deployment in
the outbox; the relay in the API process submits it again, keyed by its id, so it is deployed once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import BuildOptions, DeploymentConfig, DeploymentStatus, DeployRequest, SourceSpec
from core.models import Deployment, Environment, Service, new_id
from core.naming import deploy_workflow_id, service_hostname
from core.secrets import secret_box
from core.settings import Settings
from domain.actors import Actor
from domain.audit import audit
from domain.errors import Conflict, Invalid
from domain.scaling import NoServiceWorkflow, submit_scale
from domain.store import get_or_404
from domain.submissions import PendingDeployment, submit
from domain.temporal import TemporalConnection
from domain.variables import build_variables, effective_variables
from workflows.service import ScaleRequest

COMMIT_MESSAGE_MAX = 500


@dataclass(frozen=True)
class CommitInfo:
    """The commit a deployment builds, when it is known before the clone (a webhook's push)."""

    sha: str
    message: str | None = None
    author: str | None = None


def new_deployment(
    session: AsyncSession,
    settings: Settings,
    service: Service,
    environment: Environment,
    source: SourceSpec,
    commit: CommitInfo | None = None,
    variables: dict[str, str] | None = None,
    redeploy_of: Deployment | None = None,
    replicas: int | None = None,
) -> PendingDeployment:
    """A QUEUED deployment added to the session (not committed) and the request that deploys it.

    `variables` (the service's, in this environment) go to the replicas sealed with the platform
    key; the planner's own (NIXPACKS_*) also go to the build in clear, as build settings.
    `redeploy_of` redeploys an earlier deployment (a rollback, a scale): its image by digest
    and its configuration snapshot, no build; `replicas` overrides the replica count."""
    variables = variables or {}
    deployment_id = new_id("dep")
    config = snapshot_of(redeploy_of, service) if redeploy_of is not None else config_of(service)
    if replicas is not None:
        config = config.model_copy(update={"replicas": replicas})
    image = redeploy_of.image_ref if redeploy_of is not None else service.image
    if redeploy_of is not None:
        source = SourceSpec(kind="image", redeploy_of=redeploy_of.id)
        commit = commit or _commit_of(redeploy_of)
    deployment = Deployment(
        id=deployment_id,
        service_id=service.id,
        environment_id=environment.id,
        image=image if source.kind == "image" else None,
        builder="image" if source.kind == "image" else None,
        source=source.model_dump(exclude_none=True),
        config=config.model_dump(mode="json"),
        status=DeploymentStatus.QUEUED.value,
        workflow_id=deploy_workflow_id(service.id, environment.id, deployment_id),
    )
    if commit is not None:
        deployment.commit_sha = commit.sha
        deployment.commit_message = _subject(commit.message)
        deployment.commit_author = commit.author[:255] if commit.author else None
    session.add(deployment)
    request = DeployRequest(
        deployment_id=deployment_id,
        service_id=service.id,
        service_name=service.name,
        environment_id=environment.id,
        environment_name=environment.name,
        project_id=service.project_id,
        hostname=service_hostname(service.slug, environment.name, settings.apps_domain),
        image=deployment.image,
        source=source,
        build=BuildOptions(
            root_directory=service.root_directory,
            dockerfile_path=service.dockerfile_path,
            build_command=service.build_command,
            start_command=config.start_command,
            variables=build_variables(variables),
        ),
        image_repository=f"{settings.registry_host}/{service.slug}",
        replicas=config.replicas,
        port=config.port,
        sealed_env=secret_box(settings).seal(variables) if variables else None,
        health_check_path=config.health_check_path,
        placement=config.placement,
        overlap_seconds=config.overlap_seconds,
        draining_seconds=config.draining_seconds,
    )
    deployment.deploy_request = request.model_dump(mode="json")
    return PendingDeployment(deployment, request)


# What a snapshot recorded before a key existed runs with: the service's current value.
FROM_SERVICE = ("port", "replicas", "health_check_path", "start_command")


def config_of(service: Service) -> DeploymentConfig:
    """The configuration snapshot a new deployment of the service keeps."""
    return DeploymentConfig(
        port=service.port,
        replicas=service.replicas,
        health_check_path=service.health_check_path,
        start_command=service.start_command,
        cpu_millis=service.cpu_millis,
        memory_mb=service.memory_mb,
        constraints=list(service.constraints),
        placement_strategy=service.placement_strategy,  # type: ignore[arg-type]
        overlap_seconds=service.overlap_seconds,
        draining_seconds=service.draining_seconds,
    )


def snapshot_of(deployment: Deployment, service: Service) -> DeploymentConfig:
    """The configuration `deployment` was recorded with, what a rollback to it runs again."""
    recorded = {key: getattr(service, key) for key in FROM_SERVICE} | deployment.config
    return DeploymentConfig.model_validate(recorded)


def _commit_of(deployment: Deployment) -> CommitInfo | None:
    if deployment.commit_sha is None:
        return None
    return CommitInfo(
        sha=deployment.commit_sha, message=deployment.commit_message, author=deployment.commit_author
    )


async def redeploy(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: Actor,
    service: Service,
    environment: Environment,
    earlier: Deployment,
    *,
    replicas: int | None = None,
    action: str | None = None,
) -> Deployment:
    """Redeploy an earlier deployment (rollback, scale, heal, drain): its image by digest and
    its configuration, with the service's current variables; recorded, audited and submitted."""
    variables = await service_variables(session, settings, service, environment)
    pending = new_deployment(
        session,
        settings,
        service,
        environment,
        SourceSpec(kind="image"),
        variables=variables,
        redeploy_of=earlier,
        replicas=replicas,
    )
    deployment = pending.deployment
    action = action or ("deployment.rollback" if replicas is None else "deployment.scale")
    audit(
        session,
        actor,
        action,
        deployment.id,
        service_id=service.id,
        redeploy_of=earlier.id,
        replicas=replicas,
    )
    await session.commit()
    await submit(session, settings, temporal, pending)
    await session.refresh(deployment)
    return deployment


async def service_variables(
    session: AsyncSession, settings: Settings, service: Service, environment: Environment
) -> dict[str, str]:
    """The variables a deploy of `service` to `environment` runs with (inherited ones included)."""
    return await effective_variables(session, secret_box(settings), service, environment)


def _subject(message: str | None) -> str | None:
    if not message:
        return None
    return message.strip().split("\n", 1)[0][:COMMIT_MESSAGE_MAX]


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
    """Redeploy an earlier deployment in its environment: its image by digest and its
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
    return await redeploy(session, settings, temporal, actor, service, environment, target)


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
    scaling in place existed, by redeploying it with the new count (the new one is answered)."""
    active = await active_deployment(session, service.id, environment.id)
    if active is None:
        raise Conflict(f"environment: no ACTIVE deployment in {environment.name} to scale; deploy first")
    service.replicas = replicas
    if active.deploy_request is not None and await _scaled_in_place(temporal, active, replicas):
        audit(session, actor, "deployment.scale", active.id, service_id=service.id, replicas=replicas)
        await session.commit()
        await session.refresh(active)
        return active
    return await redeploy(session, settings, temporal, actor, service, environment, active, replicas=replicas)


async def heal(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: Actor,
    service_id: str,
    environment_id: str,
) -> Deployment:
    """Redeploy the ACTIVE deployment after some of its replicas were lost (their node DOWN, their
    container gone): the scheduler places a full set on the nodes left. Conflict when nothing is
    ACTIVE any more (a newer deploy took over)."""
    service = await get_or_404(session, Service, service_id)
    environment = await get_or_404(session, Environment, environment_id)
    active = await active_deployment(session, service.id, environment.id)
    if active is None:
        raise Conflict(f"no ACTIVE deployment of {service.id} in {environment.name} to heal")
    return await redeploy(
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
