"""DeployWorkflow: one deploy of one deployment, as a saga.

    resolve image → start replicas → wait healthy → publish route → wait until Traefik serves it
    → mark ACTIVE → stability window → drain → remove the replicas of every other deployment

Each step registers its compensation before it runs. On failure the compensations run in reverse
and the deployment ends FAILED with the step and the reason; on cancellation (a newer deploy
supersedes this one) they run too and it ends SUPERSEDED. Until the route switches, the previous
deployment keeps serving. After it switches, the new replicas are watched through the stability
window while the previous deployment's replicas keep running, and the route falls back on these whenever
none of the new ones can answer: a deploy that crash-loops then is rolled back (the previous route and
deployment restored, the new replicas removed; FAILED at `stability`) failing only the requests in flight
inside a replica as it died.
Once the window has passed there is nothing left to undo.

No step waits forever: every activity has a deadline (schedule-to-close) and a bounded number of
attempts, so an error no activity classified still ends the deploy FAILED with its step and reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows.saga import Saga
from workflows.steps import reason_of, to_the_end

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from activities.builds import BuildActivities
    from activities.contracts import (
        OrphanQuery,
        Placement,
        PlacementRequest,
        ReplicaBatch,
        ReplicaIds,
        ReplicaSet,
        ResolvedImage,
        Rollback,
        RouteKey,
        RouteSpec,
        StabilityWatch,
        StatusUpdate,
    )
    from activities.deployments import DeploymentActivities
    from activities.nodes import NodeActivities
    from activities.registry import RegistryActivities
    from activities.routing import RouteFallback, RouteOwner, RoutingActivities
    from activities.sources import DiscardSource, PreparedSource, PrepareSource, SourceActivities
    from core.build import BuildRequest, BuiltImage
    from core.contracts import DeploymentStatus, DeployRequest, DeployResult, ReplicaSpec
    from core.replica_specs import replica_specs


# Deploys begun after this change place replicas on enrolled nodes (see _place).
PLACE_ON_NODES = "place-replicas-on-nodes"

# Deploys begun after this change watch the new replicas after the cut-over and roll back (see _settle).
STABILITY_WINDOW = "stability-window"

# Deploys begun after this change route onto the previous deployment's replicas whenever none of the new
# ones can answer, until the stability window has passed (see _publish_fallback).
ROUTE_FALLBACK = "route-fallback-in-window"

# Bounded: an error no activity classified (a bug, a value the database refuses) fails the step after
# about 30 s of attempts instead of retrying forever. Retryable errors are transient by nature (an agent
# or registry restarting), which that covers; a step that needs longer says so in its own deadline.
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5), maximum_attempts=10
)
QUICK: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RETRY,
}
SLOW: workflow.ActivityConfig = {
    # Pulling an image, the health barrier (its own timeout, counted from the first attempt), Traefik
    # picking a route up: each well within this deadline, which is also what a step may take in all.
    "start_to_close_timeout": timedelta(minutes=10),
    "schedule_to_close_timeout": timedelta(minutes=10),
    # Long steps heartbeat every second: a dead worker's step is retried elsewhere within 10 s.
    "heartbeat_timeout": timedelta(seconds=10),
    "retry_policy": RETRY,
}
# How a deploy's end is recorded: longer than any other step, so that a database that is away for a few
# minutes still gets the FAILED (or SUPERSEDED) status once it is back, instead of a row left DEPLOYING.
FINAL_STATUS: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=15),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=100,
    ),
}
# Stopping old replicas waits for their draining seconds (up to an hour); the stability window is at
# most an hour too.
LONG: workflow.ActivityConfig = {
    **SLOW,
    "start_to_close_timeout": timedelta(minutes=70),
    "schedule_to_close_timeout": timedelta(minutes=75),
}


def on_queue(task_queue: str, config: workflow.ActivityConfig) -> workflow.ActivityConfig:
    return {**config, "task_queue": task_queue}


class DeployParams(DeployRequest):
    """A DeployRequest plus the platform settings the deploy depends on, fixed at start."""

    drain_seconds: float
    build_task_queue: str = "dockyard-builds"
    build_timeout_seconds: float = 1800
    build_memory_limit_bytes: int | None = None


def apply_deploy_config(params: DeployParams, prepared: PreparedSource) -> DeployParams:
    """Deploy keys in the code's railway.toml / dockyard.toml win over the service's settings,
    as Railway's config-as-code does."""
    deploy = prepared.deploy
    changes: dict[str, Any] = {}
    if isinstance(deploy.get("num_replicas"), int):
        changes["replicas"] = deploy["num_replicas"]
    if isinstance(deploy.get("healthcheck_path"), str):
        changes["health_check_path"] = deploy["healthcheck_path"]
    if isinstance(overlap := deploy.get("overlap_seconds"), int):
        changes["overlap_seconds"] = float(overlap)
    if isinstance(deploy.get("draining_seconds"), int):
        changes["draining_seconds"] = deploy["draining_seconds"]
    return params.model_copy(update=changes)


@workflow.defn
class DeployWorkflow:
    def __init__(self) -> None:
        self._step = "queued"
        self._saga = Saga()
        self._background: list[asyncio.Future[None]] = []
        self._reason = ""  # why the deploy failed, for a rollback
        self._fallback: RouteOwner | None = None  # the route falls back on the previous replicas

    @workflow.query
    def step(self) -> str:
        return self._step

    @workflow.run
    async def run(self, params: DeployParams) -> DeployResult:
        try:
            return await self._release(params)
        except BaseException as exc:
            await self._join_background()
            if is_cancelled_exception(exc):
                await self._saga.compensate()
                await to_the_end(
                    self._set_status(
                        params, DeploymentStatus.SUPERSEDED, "superseded by a newer deployment", final=True
                    )
                )
                raise
            if not isinstance(exc, ActivityError | ApplicationError):
                raise
            reason = self._reason = reason_of(exc)
            await self._saga.compensate()
            await to_the_end(
                self._set_status(params, DeploymentStatus.FAILED, reason, failed_step=self._step, final=True)
            )
            raise ApplicationError(
                f"{self._step} failed: {reason}", type="DeployFailed", non_retryable=True
            ) from exc

    async def _release(self, params: DeployParams) -> DeployResult:
        """The recipe: each step names what it does; each registers its compensation before it runs."""
        image, params = await self._image(params)
        batches = await self._start_replicas(params, image)
        healthy = await self._wait_healthy(batches)
        cut_over = await self._cut_over(params, healthy)
        if workflow.patched(STABILITY_WINDOW):
            await self._settle(batches, healthy)
        await self._clean_up(params, since=cut_over)
        self._step = "done"
        return DeployResult(
            deployment_id=params.deployment_id, status=DeploymentStatus.ACTIVE, image_digest=image.digest
        )

    async def _image(self, params: DeployParams) -> tuple[ResolvedImage, DeployParams]:
        """The image to run, pinned by digest: the one given, or built from the source (whose
        configuration files may change the parameters)."""
        if params.source.kind == "image":
            image = await self._resolve(params)
        else:
            image, params = await self._build(params)
        await self._set_status(
            params,
            DeploymentStatus.DEPLOYING,
            "starting replicas",
            image_digest=image.digest,
            image_ref=image.pinned,
        )
        return image, params

    async def _start_replicas(self, params: DeployParams, image: ResolvedImage) -> list[ReplicaBatch]:
        """The new replicas placed and started, batch by node, and recorded."""
        self._step = "start"
        batches = await self._place(params, replica_specs(params, image.pinned))
        for batch in batches:
            self._saga.on_failure("remove new replicas", _removal(batch))
        started: list[ReplicaSet] = await asyncio.gather(
            *(workflow.execute_activity_method(AgentActivities.ensure_replicas, b, **SLOW) for b in batches)
        )
        await asyncio.gather(
            *(
                workflow.execute_activity_method(DeploymentActivities.record_replicas, s, **QUICK)
                for s in started
            )
        )
        return batches

    async def _wait_healthy(self, batches: list[ReplicaBatch]) -> list[ReplicaSet]:
        self._step = "health"
        healthy: list[ReplicaSet] = await asyncio.gather(
            *(
                workflow.execute_activity_method(AgentActivities.wait_replicas_healthy, b, **SLOW)
                for b in batches
            )
        )
        return healthy

    async def _cut_over(self, params: DeployParams, healthy: list[ReplicaSet]) -> datetime:
        """Traffic moves to the healthy new replicas; answers when it had. The cut-over is not
        interrupted by a superseding deploy: it either completes (and the newer deploy replaces this
        one) or fails and restores the previous route."""
        key = RouteKey(service_id=params.service_id, environment_id=params.environment_id)
        route = RouteSpec(
            service_id=params.service_id,
            environment_id=params.environment_id,
            hostname=params.hostname,
            deployment_id=params.deployment_id,
            servers=[r.address for replica_set in healthy for r in replica_set.replicas if r.address],
        )
        cutover = asyncio.ensure_future(self._switch_traffic(key, route))
        try:
            await asyncio.shield(cutover)
        except asyncio.CancelledError:
            await cutover
            self._saga.done()  # traffic is on this deploy: the newer deploy takes over from it
            await to_the_end(self._clear_fallback())
            raise
        return workflow.now()

    async def _clean_up(self, params: DeployParams, since: datetime) -> None:
        """The previous deployment's replicas go, once they have served their in-flight requests for
        the service's overlap seconds (counted from the cut-over)."""
        overlap = params.overlap_seconds if params.overlap_seconds is not None else params.drain_seconds
        if workflow.patched(STABILITY_WINDOW):
            overlap = max(0.0, overlap - (workflow.now() - since).total_seconds())
        self._step = "cleanup"
        await self._clear_fallback()
        await workflow.sleep(timedelta(seconds=overlap))
        await workflow.execute_activity_method(
            AgentActivities.remove_orphan_replicas,
            OrphanQuery(
                service_id=params.service_id,
                environment_id=params.environment_id,
                keep_deployment_ids=[params.deployment_id],
            ),
            **(LONG if workflow.patched(STABILITY_WINDOW) else SLOW),
        )
        key = RouteKey(service_id=params.service_id, environment_id=params.environment_id)
        await workflow.execute_activity_method(DeploymentActivities.mark_replicas_removed, key, **QUICK)
        await self._join_background()

    async def _settle(self, batches: list[ReplicaBatch], healthy: list[ReplicaSet]) -> None:
        """The stability window: the new replicas serve, the previous deployment's are kept. A replica
        that restarts, exits or keeps failing its probe fails this step, and the compensations registered
        at the cut-over roll the deploy back. A newer deploy arriving now takes over from here: it
        supersedes nothing (this deploy is ACTIVE) and its own cleanup removes what this one leaves."""
        self._step = "stability"
        try:
            await asyncio.gather(
                *(
                    workflow.execute_activity_method(
                        AgentActivities.watch_replicas_stable,
                        StabilityWatch(node=batch.node, replicas=replica_set.replicas),
                        **LONG,
                    )
                    for batch, replica_set in zip(batches, healthy, strict=True)
                )
            )
        except BaseException as exc:
            if is_cancelled_exception(exc):
                self._saga.done()
                # Nobody watches this deploy any more: its route stops leaning on the previous one.
                await to_the_end(self._clear_fallback())
            raise
        self._saga.done()  # stable: nothing to undo from here on

    async def _place(self, params: DeployParams, specs: list[ReplicaSpec]) -> list[ReplicaBatch]:
        """The replicas grouped by the node each runs on: the scheduler's spread over the enrolled
        nodes, or the local agent when none is enrolled (and in deploys begun before nodes existed)."""
        if not workflow.patched(PLACE_ON_NODES):
            return [ReplicaBatch(specs=specs)]
        self._step = "place"
        placement: Placement = await workflow.execute_activity_method(
            NodeActivities.place_replicas,
            PlacementRequest(
                deployment_id=params.deployment_id,
                service_id=params.service_id,
                environment_id=params.environment_id,
                replica_ids=[spec.replica_id for spec in specs],
                placement=params.placement,
            ),
            **QUICK,
        )
        self._step = "start"
        by_id = {spec.replica_id: spec for spec in specs}
        return [
            ReplicaBatch(node=group.node, specs=[by_id[replica_id] for replica_id in group.replica_ids])
            for group in placement.groups
        ]

    async def _resolve(self, params: DeployParams) -> ResolvedImage:
        await self._set_status(params, DeploymentStatus.DEPLOYING, "resolving image")
        self._step = "resolve"
        return await workflow.execute_activity_method(
            RegistryActivities.resolve_image, params.image or "", **QUICK
        )

    async def _build(self, params: DeployParams) -> tuple[ResolvedImage, DeployParams]:
        """Fetch and plan the code on a builder, build and push the image there; answer the image
        and the params with the deploy settings found in the code's config files applied.

        Status updates run beside the step they announce, and the build log is kept and the work
        directory freed in the background (joined before the workflow ends), so that a rebuild
        costs little more than the `docker build` itself."""
        self._step = "build"
        _, prepared = await asyncio.gather(
            self._set_status(params, DeploymentStatus.BUILDING, "fetching source"),
            workflow.execute_activity_method(
                SourceActivities.prepare_source,
                PrepareSource(
                    deployment_id=params.deployment_id,
                    service_id=params.service_id,
                    source=params.source,
                    build=params.build,
                ),
                **on_queue(params.build_task_queue, SLOW),
            ),
        )
        announced = asyncio.ensure_future(
            self._set_status(
                params,
                DeploymentStatus.BUILDING,
                f"building with {prepared.builder}",
                builder=prepared.builder,
                commit_sha=prepared.commit_sha,
                commit_message=prepared.commit_message,
                commit_author=prepared.commit_author,
            )
        )
        try:
            built: BuiltImage = await workflow.execute_activity_method(
                BuildActivities.build_image,
                BuildRequest(
                    deployment_id=params.deployment_id,
                    context_dir=prepared.context_dir,
                    dockerfile=prepared.dockerfile,
                    dockerfile_path=prepared.dockerfile_path or "Dockerfile",
                    image_repository=params.image_repository or "",
                    tag=params.deployment_id.replace("_", "-"),
                    timeout_seconds=params.build_timeout_seconds,
                    memory_limit_bytes=params.build_memory_limit_bytes,
                ),
                task_queue=prepared.host_queue,
                start_to_close_timeout=timedelta(seconds=params.build_timeout_seconds + 120),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
        finally:
            self._in_background(self._after_build(params, prepared.host_queue))
            await to_the_end(announced)
        return ResolvedImage(digest=built.digest, pinned=built.pinned), apply_deploy_config(params, prepared)

    async def _after_build(self, params: DeployParams, host_queue: str) -> None:
        """Keep the build log with the deployment and free the builder's work directory."""
        await asyncio.gather(
            workflow.execute_activity_method(
                DeploymentActivities.save_build_log, params.deployment_id, **QUICK
            ),
            workflow.execute_activity_method(
                SourceActivities.discard_source,
                DiscardSource(deployment_id=params.deployment_id),
                **on_queue(host_queue, QUICK),
            ),
        )

    def _in_background(self, housekeeping: Awaitable[None]) -> None:
        self._background.append(asyncio.ensure_future(housekeeping))

    async def _join_background(self) -> None:
        """Housekeeping outlives nothing: it completes (or fails, logged) before the workflow ends."""
        for task in self._background:
            try:
                await to_the_end(task)
            except Exception as exc:
                workflow.logger.error("housekeeping failed: %s", reason_of(exc))
        self._background.clear()

    async def _switch_traffic(self, key: RouteKey, route: RouteSpec) -> None:
        self._step = "route"
        previous: RouteSpec | None = await workflow.execute_activity_method(
            RoutingActivities.get_route, key, **QUICK
        )
        self._saga.on_failure("restore previous route", lambda: self._restore_route(key, previous))
        await workflow.execute_activity_method(RoutingActivities.publish_route, route, **QUICK)
        await self._publish_fallback(route, previous)
        await workflow.execute_activity_method(RoutingActivities.wait_route_live, route, **SLOW)

        self._step = "activate"
        await workflow.execute_activity_method(
            DeploymentActivities.activate_deployment,
            StatusUpdate(
                deployment_id=route.deployment_id,
                status=DeploymentStatus.ACTIVE,
                message=f"serving {route.hostname}",
            ),
            **QUICK,
        )
        if not workflow.patched(STABILITY_WINDOW):
            self._saga.done()  # traffic is on the new version: nothing to undo from here on
            return
        # Until the stability window has passed, a failure rolls back: the previous route and deployment
        # (whose replicas are still running) instead of the route alone.
        self._saga.replace(
            "restore previous route",
            by="roll back to the previous deployment",
            compensation=lambda: self._roll_back(key, previous, route),
        )

    async def _publish_fallback(self, route: RouteSpec, previous: RouteSpec | None) -> None:
        """Until the window has passed, the previous deployment's replicas (still running) answer whenever
        none of the new ones can: while a deploy whose every replica crash-loops is rolled back, only
        the requests in flight inside a replica as it died fail. Published right after the route: the
        new replicas have just passed their health check. A rollback's publish of the previous route
        (or any other deployment's) drops it."""
        if previous is None or previous.deployment_id == route.deployment_id or not previous.servers:
            return
        if not workflow.patched(ROUTE_FALLBACK):
            return
        self._fallback = RouteOwner(
            service_id=route.service_id,
            environment_id=route.environment_id,
            deployment_id=route.deployment_id,
        )
        await workflow.execute_activity_method(
            RoutingActivities.publish_route_fallback,
            RouteFallback(owner=self._fallback, servers=previous.servers),
            **QUICK,
        )

    async def _clear_fallback(self) -> None:
        """The window is over: the route serves from this deploy's replicas alone (the previous ones
        are drained next)."""
        if self._fallback is None:
            return
        owner, self._fallback = self._fallback, None
        await workflow.execute_activity_method(RoutingActivities.clear_route_fallback, owner, **QUICK)

    async def _roll_back(self, key: RouteKey, previous: RouteSpec | None, failed: RouteSpec) -> None:
        """Serve the previous deployment again, then record it: the failed deploy FAILED at this step,
        the previous one ACTIVE again."""
        rollback = Rollback(
            failed_deployment_id=failed.deployment_id,
            failed_step=self._step,
            reason=self._reason or "rolled back",
            previous_deployment_id=previous.deployment_id if previous else None,
        )
        try:
            await self._restore_route(key, previous)
            if previous is not None:
                await workflow.execute_activity_method(RoutingActivities.wait_route_live, previous, **SLOW)
        finally:
            # Recorded whatever Traefik did: the deploy is being removed, it must not stay ACTIVE.
            await workflow.execute_activity_method(
                DeploymentActivities.roll_back_deployment, rollback, **QUICK
            )

    async def _restore_route(self, key: RouteKey, previous: RouteSpec | None) -> None:
        if previous is None:
            await workflow.execute_activity_method(RoutingActivities.unpublish_route, key, **QUICK)
        else:
            await workflow.execute_activity_method(RoutingActivities.publish_route, previous, **QUICK)

    async def _set_status(
        self,
        params: DeployParams,
        status: DeploymentStatus,
        message: str,
        *,
        final: bool = False,
        **fields: str | None,
    ) -> None:
        update = StatusUpdate(deployment_id=params.deployment_id, status=status, message=message, **fields)
        config = FINAL_STATUS if final else QUICK
        await asyncio.shield(
            asyncio.ensure_future(
                workflow.execute_activity_method(DeploymentActivities.set_deployment_status, update, **config)
            )
        )


def _removal(batch: ReplicaBatch) -> Callable[[], Awaitable[None]]:
    """The compensation of starting a batch: remove its replicas from its node."""
    ids = ReplicaIds(node=batch.node, replica_ids=[spec.replica_id for spec in batch.specs], grace_seconds=1)
    return lambda: workflow.execute_activity_method(AgentActivities.remove_replicas, ids, **QUICK)
