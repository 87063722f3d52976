"""ScaleWorkflow: more or fewer replicas of the ACTIVE deployment, the others untouched.

    up:   place the added ids → start → wait healthy → record them → route kept + added → Traefik serves it
    down: record the removed ones removed → route the kept → Traefik serves it → overlap → remove them

Added replicas run exactly what the others run: the deployment's own deploy request (its variables
sealed as they were at its creation) and image by digest, at the next indexes; a scale down removes
the highest indexes, each with its draining grace, once Traefik no longer sends them anything. The
kept replicas are never restarted and the route never lacks a healthy server. A failure before the
route has changed undoes the step (added replicas removed, rows and route as they were) and the
scale ends FAILED with the step and the reason; the deployment stays ACTIVE as it was.

Replica rows are recorded before the route changes, as the fleet watch republishes routes of ACTIVE
deployments to their recorded replicas: it then agrees with the route this publishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows.steps import reason_of, to_the_end

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from activities.contracts import (
        Placement,
        PlacementRequest,
        ReplicaBatch,
        ReplicaIds,
        ReplicaSet,
        RouteKey,
        RouteSpec,
        StatusUpdate,
    )
    from activities.deployments import DeploymentActivities
    from activities.routing import RoutingActivities
    from activities.scale import LiveReplica, ReplicaRows, ScaleActivities, ScaleState, ScaleTarget
    from core.contracts import Contract, DeploymentStatus
    from core.scaling import ScalePlan, plan_scale
    from workflows.deploy import LONG, QUICK, SLOW


class ScaleParams(Contract):
    service_id: str
    environment_id: str
    deployment_id: str
    replicas: int
    overlap_seconds: float = 0.5  # removed replicas keep serving in-flight requests this long


class ScaleResult(Contract):
    deployment_id: str
    replicas: int
    added: list[str]
    removed: list[str]


@workflow.defn
class ScaleWorkflow:
    def __init__(self) -> None:
        self._step = "load"
        self._compensations: list[Callable[[], Awaitable[Any]]] = []

    @workflow.query
    def step(self) -> str:
        return self._step

    @workflow.run
    async def run(self, params: ScaleParams) -> ScaleResult:
        target = ScaleTarget(deployment_id=params.deployment_id, replicas=params.replicas)
        try:
            state: ScaleState = await workflow.execute_activity_method(
                ScaleActivities.load_scale_state, target, **QUICK
            )
            plan = plan_scale(
                state.request, state.image, [r.replica_id for r in state.replicas], params.replicas
            )
            if plan.add:
                await self._scale_up(params, state, plan)
            elif plan.remove:
                await self._scale_down(params, state, plan)
            self._step = "record"
            await workflow.execute_activity_method(ScaleActivities.record_scale, target, **QUICK)
        except BaseException as exc:
            await self._compensate()
            if is_cancelled_exception(exc) or not isinstance(exc, ActivityError | ApplicationError):
                raise
            message = f"scale to {params.replicas} replicas failed at {self._step}: {reason_of(exc)}"
            # The deployment stays ACTIVE as it was; its message says why the scale did not happen.
            failed = StatusUpdate(
                deployment_id=params.deployment_id, status=DeploymentStatus.ACTIVE, message=message
            )
            await to_the_end(
                workflow.execute_activity_method(DeploymentActivities.set_deployment_status, failed, **QUICK)
            )
            raise ApplicationError(message, type="ScaleFailed", non_retryable=True) from exc
        self._step = "done"
        return ScaleResult(
            deployment_id=params.deployment_id,
            replicas=params.replicas,
            added=[spec.replica_id for spec in plan.add],
            removed=plan.remove,
        )

    async def _scale_up(self, params: ScaleParams, state: ScaleState, plan: ScalePlan) -> None:
        previous = await self._route(params)
        self._step = "place"
        placement: Placement = await workflow.execute_activity_method(
            ScaleActivities.place_added_replicas,
            PlacementRequest(
                deployment_id=params.deployment_id,
                service_id=params.service_id,
                environment_id=params.environment_id,
                replica_ids=[spec.replica_id for spec in plan.add],
                placement=state.request.placement,
            ),
            **QUICK,
        )
        by_id = {spec.replica_id: spec for spec in plan.add}
        batches = [
            ReplicaBatch(node=group.node, specs=[by_id[rid] for rid in group.replica_ids])
            for group in placement.groups
        ]
        self._step = "start"
        for batch in batches:
            self._on_failure(_removal(batch))
        added = [spec.replica_id for spec in plan.add]
        self._on_failure(lambda: _set_rows(params.deployment_id, added, "removed"))
        await asyncio.gather(
            *(workflow.execute_activity_method(AgentActivities.ensure_replicas, b, **SLOW) for b in batches)
        )
        self._step = "health"
        healthy: list[ReplicaSet] = await asyncio.gather(
            *(
                workflow.execute_activity_method(AgentActivities.wait_replicas_healthy, b, **SLOW)
                for b in batches
            )
        )
        await asyncio.gather(
            *(
                workflow.execute_activity_method(DeploymentActivities.record_replicas, s, **QUICK)
                for s in healthy
            )
        )
        self._step = "route"
        kept = _addresses(state.replicas, plan.keep)
        new = [r.address for replica_set in healthy for r in replica_set.replicas if r.address]
        self._on_failure(lambda: _publish(previous))
        await self._serve(previous.model_copy(update={"servers": kept + new}))
        self._compensations.clear()  # the added replicas serve: nothing to undo

    async def _scale_down(self, params: ScaleParams, state: ScaleState, plan: ScalePlan) -> None:
        previous = await self._route(params)
        self._step = "route"
        self._on_failure(lambda: _publish(previous))
        self._on_failure(lambda: _set_rows(params.deployment_id, plan.remove, "running"))
        await _set_rows(params.deployment_id, plan.remove, "removed")
        await self._serve(previous.model_copy(update={"servers": _addresses(state.replicas, plan.keep)}))
        self._compensations.clear()  # Traffic no longer reaches the removed ones: they only drain now.
        self._step = "drain"
        await workflow.sleep(timedelta(seconds=params.overlap_seconds))
        removed = {r.replica_id: r for r in state.replicas if r.replica_id in plan.remove}
        nodes = {r.node.node_id: r.node for r in removed.values()}
        await asyncio.gather(
            *(
                workflow.execute_activity_method(
                    AgentActivities.remove_replicas,
                    # grace None: each replica's own draining seconds.
                    ReplicaIds(
                        node=node,
                        replica_ids=[rid for rid in plan.remove if removed[rid].node.node_id == node_id],
                    ),
                    **LONG,
                )
                for node_id, node in nodes.items()
            )
        )

    async def _route(self, params: ScaleParams) -> RouteSpec:
        self._step = "route"
        route: RouteSpec | None = await workflow.execute_activity_method(
            RoutingActivities.get_route,
            RouteKey(service_id=params.service_id, environment_id=params.environment_id),
            **QUICK,
        )
        if route is None or route.deployment_id != params.deployment_id:
            serves = route.deployment_id if route else "nothing"
            raise ApplicationError(
                f"the route serves {serves}, not {params.deployment_id}",
                type="NotScalable",
                non_retryable=True,
            )
        return route

    async def _serve(self, route: RouteSpec) -> None:
        await _publish(route)
        await workflow.execute_activity_method(RoutingActivities.wait_route_live, route, **SLOW)

    def _on_failure(self, compensation: Callable[[], Awaitable[Any]]) -> None:
        self._compensations.append(compensation)

    async def _compensate(self) -> None:
        for compensation in reversed(self._compensations):
            try:
                await to_the_end(compensation())
            except Exception as exc:
                workflow.logger.error("scale compensation failed: %s", reason_of(exc))
        self._compensations.clear()


def _addresses(replicas: list[LiveReplica], ids: list[str]) -> list[str]:
    return [r.address for r in replicas if r.replica_id in ids and r.address]


async def _publish(route: RouteSpec) -> None:
    await workflow.execute_activity_method(RoutingActivities.publish_route, route, **QUICK)


async def _set_rows(deployment_id: str, replica_ids: list[str], state: str) -> None:
    rows = ReplicaRows(deployment_id=deployment_id, replica_ids=replica_ids, state=state)
    await workflow.execute_activity_method(ScaleActivities.set_replica_rows, rows, **QUICK)


def _removal(batch: ReplicaBatch) -> Callable[[], Awaitable[None]]:
    ids = ReplicaIds(node=batch.node, replica_ids=[spec.replica_id for spec in batch.specs], grace_seconds=1)
    return lambda: workflow.execute_activity_method(AgentActivities.remove_replicas, ids, **QUICK)


__all__ = ["ScaleParams", "ScaleResult", "ScaleWorkflow"]
