"""A service's autoscaling in an environment: set, read, remove its policy, and read its decisions.

Setting a policy records it and starts (or wakes) the service's AutoscalerWorkflow; removing it wakes the
workflow, which finds no policy and ends. Workers start an autoscaler for every recorded policy when they
start (`ensure_autoscalers`), so a policy recorded while Temporal was away gets its workflow too. While
autoscaling is on, the autoscaler owns the replica count: a manual scale is undone at its next evaluation
if the metrics say otherwise (as Kubernetes' HPA does).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from core.autoscaling import AutoscalingPolicy
from core.models import Autoscaling, Environment, ScalingEvent, Service
from core.naming import autoscaler_workflow_id
from core.settings import Settings
from core.temporal import search_attributes
from domain.actors import Actor
from domain.audit import audit
from domain.errors import NotFound, Unavailable
from domain.temporal import TemporalConnection
from workflows.autoscale import RECONSIDER_SIGNAL, AutoscalerInput, AutoscalerWorkflow

EVENTS_MAX = 500


async def set_policy(
    session: AsyncSession,
    settings: Settings,
    temporal: TemporalConnection,
    actor: Actor,
    service: Service,
    environment: Environment,
    policy: AutoscalingPolicy,
) -> Autoscaling:
    row = await session.get(Autoscaling, (service.id, environment.id))
    if row is None:
        row = Autoscaling(service_id=service.id, environment_id=environment.id)
        session.add(row)
    row.policy = policy.model_dump(mode="json")
    audit(
        session,
        actor,
        "autoscaling.set",
        service.id,
        service_id=service.id,
        environment=environment.name,
        policy=row.policy,
    )
    await session.commit()
    await session.refresh(row)
    await start_autoscaler(await temporal.get(), settings, service.id, environment.id)
    return row


async def get_policy(session: AsyncSession, service: Service, environment: Environment) -> Autoscaling:
    row = await session.get(Autoscaling, (service.id, environment.id))
    if row is None:
        raise NotFound("autoscaling of service", f"{service.id} in {environment.name}")
    return row


async def remove_policy(
    session: AsyncSession,
    temporal: TemporalConnection,
    actor: Actor,
    service: Service,
    environment: Environment,
) -> None:
    row = await get_policy(session, service, environment)
    await session.delete(row)
    audit(
        session, actor, "autoscaling.remove", service.id, service_id=service.id, environment=environment.name
    )
    await session.commit()
    try:  # it would find no policy at its next evaluation anyway: this only makes that now
        handle = (await temporal.get()).get_workflow_handle(
            autoscaler_workflow_id(service.id, environment.id)
        )
        await handle.signal(RECONSIDER_SIGNAL)
    except (RPCError, Unavailable):
        pass


async def scaling_events(
    session: AsyncSession, service: Service, environment: Environment, limit: int = 50
) -> list[ScalingEvent]:
    rows = await session.scalars(
        select(ScalingEvent)
        .where(ScalingEvent.service_id == service.id, ScalingEvent.environment_id == environment.id)
        .order_by(ScalingEvent.at.desc(), ScalingEvent.id.desc())
        .limit(min(limit, EVENTS_MAX))
    )
    return list(rows)


async def start_autoscaler(client: Client, settings: Settings, service_id: str, environment_id: str) -> None:
    """Start the service's autoscaler, or wake the one running (it reads the policy again)."""
    workflow_id = autoscaler_workflow_id(service_id, environment_id)
    try:
        handle = await client.start_workflow(
            AutoscalerWorkflow.run,
            AutoscalerInput(
                service_id=service_id,
                environment_id=environment_id,
                evaluation_seconds=settings.autoscaling_interval_seconds,
            ),
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes(service_id=service_id, environment_id=environment_id),
        )
        await handle.signal(RECONSIDER_SIGNAL)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # ended between the start and the signal: it read it
            return
        raise Unavailable(
            f"the policy is saved, but Temporal refused its autoscaler ({exc.message}); "
            "workers start it when they start"
        ) from None


async def ensure_autoscalers(session: AsyncSession, client: Client, settings: Settings) -> int:
    """An autoscaler for every recorded policy (a running one is joined); answers how many."""
    rows = list(await session.scalars(select(Autoscaling)))
    for row in rows:
        await start_autoscaler(client, settings, row.service_id, row.environment_id)
    return len(rows)
