"""Metrics through Prometheus: a service's (per environment) and a node's series over a time range
(domain/metrics.py), and the discovery of the agents Prometheus scrapes (its HTTP service discovery,
called with Prometheus' service identity)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import AdminActor, CurrentActor, SessionDep, SettingsDep
from api.schemas.common import EnvironmentName
from api.schemas.metrics import MetricRead, ScrapeTargets
from core.metrics import NodeMetric, ServiceMetric
from core.models import Node
from domain import metrics
from domain.authorization import Permission, require_internal, service_in_environment
from domain.metrics import MetricRange
from domain.store import get_or_404

router = APIRouter(prefix="/v1", tags=["metrics"])
internal_router = APIRouter(prefix="/internal", tags=["internal"])

RangeParam = Annotated[str, Query(alias="range", description="how far back: 30s, 15m, 6h, 7d (at most 31d)")]
StepParam = Annotated[
    str | None, Query(description="seconds between points (e.g. 30s); default: about 500 points")
]


@router.get("/services/{service_id}/metrics", operation_id="get_service_metrics")
async def get_service_metrics(
    service_id: str,
    metric: ServiceMetric,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentActor,
    environment: EnvironmentName = "production",
    period: RangeParam = "1h",
    step: StepParam = None,
) -> MetricRead:
    """One metric of the service in an environment: summed over its replicas, and per replica (CPU,
    memory, network, disk) — or its requests, 5xx errors and latency quantiles as Traefik saw them."""
    service, env = await service_in_environment(session, actor, Permission.READ, service_id, environment)
    span = metrics.window(settings, period, step)
    return _read(await metrics.service_metric(settings, service, env, metric, span))


@router.get("/nodes/{node_id}/metrics", operation_id="get_node_metrics")
async def get_node_metrics(
    node_id: str,
    metric: NodeMetric,
    session: SessionDep,
    settings: SettingsDep,
    actor: AdminActor,
    period: RangeParam = "1h",
    step: StepParam = None,
) -> MetricRead:
    """One metric of a node: CPU cores busy, memory and disk used, load."""
    node = await get_or_404(session, Node, node_id)
    span = metrics.window(settings, period, step)
    return _read(await metrics.node_metric(settings, node, metric, span))


@internal_router.get("/prometheus/targets", operation_id="prometheus_targets")
async def prometheus_targets(session: SessionDep, actor: CurrentActor) -> list[ScrapeTargets]:
    """The enrolled agents, for Prometheus' http_sd_config: every node not removed (a DOWN one too: its
    failed scrape is what `up` says)."""
    require_internal(actor, "prometheus")
    nodes = await session.scalars(select(Node).where(Node.removed_at.is_(None)).order_by(Node.name))
    return [
        ScrapeTargets(targets=[node.address], labels={"node": node.name, "node_id": node.id})
        for node in nodes
    ]


def _read(found: MetricRange) -> MetricRead:
    return MetricRead.model_validate(found, from_attributes=True)
