"""Creating a deployment and handing it to Temporal: shared by the deploy routes and the webhooks.

Two phases, so that a caller can record several deployments (and what caused them) in one
transaction before any of them starts:

    pending = new_deployment(session, settings, service, environment, source, commit)
    await session.commit()    # recorded with its DeployRequest: the outbox (domain/submissions.py)
    await submit(session, settings, temporal, pending)   # FAILED at `submit` only if Temporal refuses

A crash between the two, or an answer from Temporal that never arrives, leaves the deployment in
the outbox; the relay in the API process submits it again, keyed by its id, so it is released once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import (
    BuildOptions,
    DeploymentConfig,
    DeploymentStatus,
    DeployRequest,
    SourceSpec,
)
from core.models import Deployment, Environment, Service, new_id
from core.naming import deploy_workflow_id, service_hostname
from core.secrets import secret_box
from core.settings import Settings
from domain.actors import Actor
from domain.audit import audit
from domain.crash_points import crash_point
from domain.errors import Unavailable
from domain.releases import DeployRefused, DeployUnconfirmed, TemporalConnection, submit_deploy, within
from domain.submissions import SUBMIT_TIMEOUT_SECONDS, mark_refused, mark_submitted, mark_unconfirmed
from domain.variables import build_variables, effective_variables

COMMIT_MESSAGE_MAX = 500


@dataclass(frozen=True)
class CommitInfo:
    """The commit a deployment builds, when it is known before the clone (a webhook's push)."""

    sha: str
    message: str | None = None
    author: str | None = None


@dataclass
class PendingDeployment:
    deployment: Deployment
    request: DeployRequest


def new_deployment(
    session: AsyncSession,
    settings: Settings,
    service: Service,
    environment: Environment,
    source: SourceSpec,
    commit: CommitInfo | None = None,
    variables: dict[str, str] | None = None,
    release_of: Deployment | None = None,
    replicas: int | None = None,
) -> PendingDeployment:
    """A QUEUED deployment added to the session (not committed) and the request that releases it.

    `variables` (the service's, in this environment) go to the replicas sealed with the platform
    key; the planner's own (NIXPACKS_*) also go to the build in clear, as build settings.
    `release_of` releases an earlier deployment again (a rollback, a scale): its image by digest
    and its configuration snapshot, no build; `replicas` overrides the replica count."""
    variables = variables or {}
    deployment_id = new_id("dep")
    config = snapshot_of(release_of, service) if release_of is not None else config_of(service)
    if replicas is not None:
        config = config.model_copy(update={"replicas": replicas})
    image = release_of.image_ref if release_of is not None else service.image
    if release_of is not None:
        source = SourceSpec(kind="image", release_of=release_of.id)
        commit = commit or _commit_of(release_of)
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
    deployment.release_request = request.model_dump(mode="json")
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


async def release_again(
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
    """Release an earlier deployment again (rollback, scale, heal, drain): its image by digest and
    its configuration, with the service's current variables; recorded, audited and submitted."""
    variables = await service_variables(session, settings, service, environment)
    pending = new_deployment(
        session,
        settings,
        service,
        environment,
        SourceSpec(kind="image"),
        variables=variables,
        release_of=earlier,
        replicas=replicas,
    )
    deployment = pending.deployment
    action = action or ("deployment.rollback" if replicas is None else "deployment.scale")
    audit(
        session, actor, action, deployment.id, service_id=service.id, release_of=earlier.id, replicas=replicas
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


async def submit(
    session: AsyncSession, settings: Settings, temporal: TemporalConnection, pending: PendingDeployment
) -> None:
    """Hand a committed deployment to its service's workflow and record that Temporal has it.

    Temporal refuses it, or cannot be reached before anything is sent: it ends FAILED at `submit`
    with the reason (raised as a DomainError). Temporal does not say (a timeout, a connection lost
    mid-call): it stays QUEUED, noted unconfirmed, and the relay (domain/submissions.py) asks Temporal
    and submits it again if need be. It is never FAILED while Temporal may be running it."""
    deployment_id = pending.deployment.id
    try:
        client = await temporal.get()
    except Unavailable as exc:
        await mark_refused(session, deployment_id, exc.detail)
        raise
    crash_point("before-submit")
    try:
        await within(SUBMIT_TIMEOUT_SECONDS, submit_deploy(client, settings, pending.request))
    except DeployRefused as exc:
        await mark_refused(session, deployment_id, exc.reason)
        raise exc.error from None
    except DeployUnconfirmed as exc:
        await mark_unconfirmed(session, deployment_id, str(exc))
        return
    crash_point("after-submit")
    await mark_submitted(session, deployment_id)


def _subject(message: str | None) -> str | None:
    if not message:
        return None
    return message.strip().split("\n", 1)[0][:COMMIT_MESSAGE_MAX]
