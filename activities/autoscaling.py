"""The autoscaler's activities (workflows/autoscale.py): read a service's policy and ACTIVE deployment,
observe its replicas through Prometheus, record a decision, and scale in place (domain/deployments.py).

Each is idempotent: the reads read; a decision is recorded once per evaluation (keyed by its instant);
a scale to the count the deployment already has changes nothing, and one the service's entity refuses
(a deploy or another scale in progress) is answered as such, for the next evaluation to look again.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from typing import Any

from sqlalchemy import select
from temporalio import activity

from core.autoscaling import AutoscalingPolicy, Observation, ReplicaUsage
from core.contracts import Contract
from core.db import Database
from core.models import LIVE_REPLICA_STATES, Autoscaling, Environment, Replica, ScalingEvent, Service
from core.naming import route_name
from core.settings import Settings
from domain import deployments, metrics
from domain.actors import control_plane
from domain.errors import DomainError, Unavailable
from domain.temporal import TemporalConnection

ACTOR = control_plane("autoscaler")


class AutoscaleTarget(Contract):
    service_id: str
    environment_id: str


class AutoscaleState(Contract):
    """What one evaluation starts from; `policy` None: autoscaling was turned off."""

    policy: AutoscalingPolicy | None = None
    deployment_id: str | None = None  # the ACTIVE deployment; None: nothing to scale yet
    replicas: int = 0
    cpu_millis: int | None = None  # what each replica reserves
    memory_mb: int | None = None


class ObserveRequest(Contract):
    service_id: str
    environment_id: str
    deployment_id: str
    replicas: int
    cpu_millis: int | None = None
    memory_mb: int | None = None
    window_seconds: int = 60


class DecisionRecord(Contract):
    service_id: str
    environment_id: str
    at: datetime
    current: int
    recommendation: int
    desired: int
    reason: str
    inputs: dict[str, Any]
    result: str


class ScaleOrder(Contract):
    service_id: str
    environment_id: str
    deployment_id: str
    replicas: int


class AutoscalingActivities:
    def __init__(self, db: Database, settings: Settings, temporal: TemporalConnection) -> None:
        self.db = db
        self.settings = settings
        self.temporal = temporal

    @activity.defn
    async def load_autoscaling(self, target: AutoscaleTarget) -> AutoscaleState:
        async with self.db.session() as session:
            row = await session.get(Autoscaling, (target.service_id, target.environment_id))
            if row is None:
                return AutoscaleState()
            policy = AutoscalingPolicy.model_validate(row.policy)
            service = await session.get(Service, target.service_id)
            active = await deployments.active_deployment(session, target.service_id, target.environment_id)
            if service is None or active is None:
                return AutoscaleState(policy=policy)
            config = deployments.snapshot_of(active, service)
        return AutoscaleState(
            policy=policy,
            deployment_id=active.id,
            replicas=config.replicas,  # a scale in place updates the snapshot (activities/scale.py)
            cpu_millis=config.cpu_millis,
            memory_mb=config.memory_mb,
        )

    @activity.defn
    async def observe(self, request: ObserveRequest) -> Observation:
        """The deployment's replicas as Prometheus saw them over the last window: each one's CPU and
        memory as a share of what it reserves (CPU: of one core when it reserves none), whether it
        runs; and the service's requests per second through Traefik. Prometheus unreachable: the
        activity fails and is retried; the decision waits."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(Replica).where(Replica.deployment_id == request.deployment_id)
            )
            known = {row.id: row.state for row in rows}
        selector = (
            f'service="{request.service_id}",environment="{request.environment_id}",'
            f'deployment="{request.deployment_id}"'
        )
        window = f"{request.window_seconds}s"
        router = route_name(request.service_id, request.environment_id)
        cpu, memory, up, rps = await asyncio.gather(
            self._by_replica(
                f"sum by (replica) (rate(container_cpu_usage_seconds_total{{{selector}}}[{window}]))"
            ),
            self._by_replica(f"max by (replica) (container_memory_working_set_bytes{{{selector}}})"),
            self._by_replica(f"max by (replica) (dockyard_replica_up{{{selector}}})"),
            self._scalar(
                f'sum(rate(traefik_router_requests_total{{router=~"{router}(-tls)?@http"}}[{window}]))'
            ),
        )
        cores = (request.cpu_millis or 1000) / 1000
        memory_bytes = request.memory_mb * 2**20 if request.memory_mb else None
        # The replicas the deployment has now (a removed one's series linger in Prometheus for a while);
        # ready once running, and while Prometheus does not say it stopped.
        replicas = [
            ReplicaUsage(
                replica=name,
                ready=state == "running" and up.get(name, 1.0) == 1.0,
                cpu=cpu[name] / cores if name in cpu else None,
                memory=memory[name] / memory_bytes if name in memory and memory_bytes else None,
            )
            for name, state in sorted(known.items())
            if state in LIVE_REPLICA_STATES
        ]
        return Observation(current=request.replicas, replicas=replicas, requests_per_second=rps)

    @activity.defn
    async def record_decision(self, record: DecisionRecord) -> None:
        async with self.db.transaction() as session:
            seen = await session.scalar(
                select(ScalingEvent.id).where(
                    ScalingEvent.service_id == record.service_id,
                    ScalingEvent.environment_id == record.environment_id,
                    ScalingEvent.at == record.at,
                )
            )
            if seen is None:
                session.add(ScalingEvent(**record.model_dump()))

    @activity.defn
    async def scale(self, order: ScaleOrder) -> str:
        """Scale the ACTIVE deployment in place; answers "scaled" or why it did not."""
        async with self.db.session() as session:
            service = await session.get(Service, order.service_id)
            environment = await session.get(Environment, order.environment_id)
            active = await deployments.active_deployment(session, order.service_id, order.environment_id)
            if service is None or environment is None:
                return "the service or its environment is gone"
            if active is None or active.id != order.deployment_id:
                return "another deployment became ACTIVE meanwhile: the next evaluation looks again"
            try:
                await deployments.scale(
                    session, self.settings, self.temporal, ACTOR, service, environment, order.replicas
                )
            except DomainError as exc:
                return exc.detail
        return "scaled"

    async def _by_replica(self, promql: str) -> dict[str, float]:
        return {
            result["metric"].get("replica", ""): value
            for result in await self._query(promql)
            if math.isfinite(value := float(result["value"][1]))
        }

    async def _scalar(self, promql: str) -> float | None:
        results = await self._query(promql)
        return float(results[0]["value"][1]) if results else None

    async def _query(self, promql: str) -> list[dict[str, Any]]:
        try:
            return await metrics.instant(self.settings, promql)
        except Unavailable as exc:  # retried by the workflow's policy; the round decides nothing meanwhile
            raise RuntimeError(exc.detail) from None
