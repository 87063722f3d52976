"""Autoscaling per service and environment (domain/autoscaling.py): the policy, and the decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentActor, SessionDep, SettingsDep, TemporalDep
from api.schemas.autoscaling import AutoscalingRead, ScalingEventRead
from api.schemas.common import EnvironmentName
from core.autoscaling import AutoscalingPolicy
from core.models import Autoscaling, Environment
from domain import autoscaling
from domain.authorization import Permission, service_in_environment

router = APIRouter(prefix="/v1/services/{service_id}", tags=["autoscaling"])


@router.put("/autoscaling", operation_id="set_autoscaling")
async def set_autoscaling(
    service_id: str,
    body: AutoscalingPolicy,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    actor: CurrentActor,
    environment: EnvironmentName = "production",
) -> AutoscalingRead:
    """Scale the service's replicas in the environment on CPU, memory and requests per second (any of
    them), between min and max, the HPA's way; its autoscaler evaluates every 15 s."""
    service, env = await service_in_environment(session, actor, Permission.CONFIGURE, service_id, environment)
    row = await autoscaling.set_policy(session, settings, temporal, actor, service, env, body)
    return _read(row, env)


@router.get("/autoscaling", operation_id="get_autoscaling")
async def get_autoscaling(
    service_id: str, session: SessionDep, actor: CurrentActor, environment: EnvironmentName = "production"
) -> AutoscalingRead:
    service, env = await service_in_environment(session, actor, Permission.READ, service_id, environment)
    return _read(await autoscaling.get_policy(session, service, env), env)


@router.delete("/autoscaling", status_code=status.HTTP_204_NO_CONTENT, operation_id="remove_autoscaling")
async def remove_autoscaling(
    service_id: str,
    session: SessionDep,
    temporal: TemporalDep,
    actor: CurrentActor,
    environment: EnvironmentName = "production",
) -> Response:
    """Autoscaling off: the replicas stay as they are."""
    service, env = await service_in_environment(session, actor, Permission.CONFIGURE, service_id, environment)
    await autoscaling.remove_policy(session, temporal, actor, service, env)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/scaling-events", operation_id="list_scaling_events")
async def list_scaling_events(
    service_id: str,
    session: SessionDep,
    actor: CurrentActor,
    environment: EnvironmentName = "production",
    limit: Annotated[int, Query(ge=1, le=autoscaling.EVENTS_MAX)] = 50,
) -> list[ScalingEventRead]:
    """The autoscaler's decisions that changed, or wanted to change, the replicas; newest first."""
    service, env = await service_in_environment(session, actor, Permission.READ, service_id, environment)
    events = await autoscaling.scaling_events(session, service, env, limit)
    return [ScalingEventRead.model_validate(event, from_attributes=True) for event in events]


def _read(row: Autoscaling, environment: Environment) -> AutoscalingRead:
    return AutoscalingRead(
        service_id=row.service_id,
        environment_id=row.environment_id,
        environment=environment.name,
        policy=AutoscalingPolicy.model_validate(row.policy),
        updated_at=row.updated_at,
    )
