"""Dockyard's activities replaced under their real names, for workflow tests on a real Temporal server.

Each fake records its call, keeps just enough state to answer like the real one (routes, replicas,
status updates) and can be told to fail or to block until released:

    fakes = FakeActivities()
    gate = fakes.block("wait_replicas_healthy", deployment="dep-a")
    fakes.fail("resolve_image", "image not found", type="ImageNotFound", deployment="dep-b")
    Worker(client, task_queue=..., workflows=WORKFLOWS, activities=fakes.activities())
    await gate.entered.wait(); ...; gate.release()

Blocked fakes heartbeat, so Temporal can cancel them, and run on the test's event loop, so the test
and the fakes share state without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    NodeRef,
    NodeReplicas,
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
from activities.routing import RouteFallback, RouteOwner
from activities.scale import LiveReplica, ReplicaRows, ScaleState, ScaleTarget
from activities.sources import DiscardSource, PreparedSource, PrepareSource
from core.build import BuildRequest, BuiltImage
from core.contracts import DeploymentStatus, DeployRequest, ReplicaState, ReplicaStatus
from core.images import parse_image_reference

NODE = "fake-node"


def image_for(deployment_id: str) -> str:
    """The image a test deploys for a deployment: its tag is the deployment id, so rules can match it."""
    return f"registry.test/apps/web:{deployment_id}"


@dataclass
class Call:
    name: str
    arg: Any
    deployment_id: str | None


@dataclass
class Gate:
    """Where a blocked activity waits; `entered` is set once the activity reached it."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.opened.set()


@dataclass
class Rule:
    name: str
    deployment_id: str | None
    error: Callable[[], BaseException] | None = None
    gate: Gate | None = None

    def matches(self, call: Call) -> bool:
        return call.name == self.name and self.deployment_id in (None, call.deployment_id)


class FakeActivities:
    host_queue = "unset"  # the harness names the fake builder host's queue
    deploy_config: dict[str, object] = {}  # noqa: RUF012 - deploy keys "found" in the source's config files
    commit_sha: str | None = None  # the commit "cloned"
    environment_images: tuple[str, ...] = ()  # what images_only_in "finds"
    nodes: tuple[str, ...] = ()  # enrolled node ids place_replicas spreads over (none: the local agent)

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.routes: dict[tuple[str, str], RouteSpec] = {}
        self.fallbacks: dict[tuple[str, str], list[str]] = {}  # a route's fallback servers, if any
        self.updates: dict[str, list[StatusUpdate]] = defaultdict(list)  # every update, in order
        self.current: dict[str, DeploymentStatus] = {}  # what the real activities would have stored
        self.live_replicas: dict[str, str] = {}  # replica id -> deployment id
        self.deploy_requests: dict[str, DeployRequest] = {}  # what load_scale_state answers
        self.replica_rows: dict[str, str] = {}  # replica id -> state, as set_replica_rows left it
        self.scaled: dict[str, int] = {}  # deployment id -> replica count record_scale recorded
        self._rules: list[Rule] = []

    # --- what a test tells the fakes ----------------------------------------------------------------

    def fail(
        self, name: str, message: str, *, type: str = "FakeFailure", deployment: str | None = None
    ) -> None:
        """Make activity `name` fail (non-retryable) with `message` whenever it runs for `deployment`."""
        error = lambda: ApplicationError(message, type=type, non_retryable=True)  # noqa: E731
        self._rules.append(Rule(name, deployment, error=error))

    def break_(self, name: str, message: str, *, deployment: str | None = None) -> None:
        """Make activity `name` raise an error nobody classified (a ValueError, so Temporal retries it)."""
        self._rules.append(Rule(name, deployment, error=lambda: ValueError(message)))

    def block(self, name: str, *, deployment: str | None = None) -> Gate:
        gate = Gate()
        self._rules.append(Rule(name, deployment, gate=gate))
        return gate

    def release_all(self) -> None:
        for rule in self._rules:
            if rule.gate is not None:
                rule.gate.release()

    # --- what a test reads back ---------------------------------------------------------------------

    def names(self, deployment: str | None = None) -> list[str]:
        return [c.name for c in self.calls if deployment is None or c.deployment_id == deployment]

    def args(self, name: str, deployment: str | None = None) -> list[Any]:
        return [c.arg for c in self.calls if c.name == name and deployment in (None, c.deployment_id)]

    def status(self, deployment_id: str) -> DeploymentStatus | None:
        return self.current.get(deployment_id)

    def statuses(self, deployment_id: str) -> list[DeploymentStatus]:
        return [u.status for u in self.updates.get(deployment_id, [])]

    def last_update(self, deployment_id: str) -> StatusUpdate:
        return self.updates[deployment_id][-1]

    async def wait_for(self, check: Callable[[], bool], what: str, within: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not check():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what} not reached within {within:g}s; calls: {self.names()}")
            await asyncio.sleep(0.02)

    async def wait_final(self, *deployment_ids: str, within: float = 30) -> None:
        def final() -> bool:
            return all((s := self.status(d)) is not None and s.is_final for d in deployment_ids)

        await self.wait_for(final, f"a final status for {', '.join(deployment_ids)}", within)

    # --- the activities, under the names the real worker registers ---------------------------------

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.set_deployment_status,
            self.record_replicas,
            self.activate_deployment,
            self.mark_replicas_removed,
            self.resolve_image,
            self.ensure_replicas,
            self.wait_replicas_healthy,
            self.watch_replicas_stable,
            self.roll_back_deployment,
            self.remove_replicas,
            self.remove_orphan_replicas,
            self.get_route,
            self.publish_route,
            self.unpublish_route,
            self.publish_route_fallback,
            self.clear_route_fallback,
            self.wait_route_live,
            self.save_build_log,
            self.place_replicas,
            self.stop_service_workflow,
            self.images_only_in,
            self.delete_image,
            self.delete_environment,
            self.load_scale_state,
            self.place_added_replicas,
            self.set_replica_rows,
            self.record_scale,
        ]

    def build_activities(self) -> list[Callable[..., Any]]:
        """The builders' shared queue."""
        return [self.prepare_source]

    def host_activities(self) -> list[Callable[..., Any]]:
        """The queue of the builder host that holds the source."""
        return [self.build_image, self.discard_source]

    @activity.defn(name="prepare_source")
    async def prepare_source(self, request: PrepareSource) -> PreparedSource:
        await self._run("prepare_source", request, request.deployment_id)
        return PreparedSource(
            host_queue=self.host_queue,
            context_dir=f"/builds/{request.deployment_id}/src",
            builder="planner",
            dockerfile="FROM base\n",
            deploy=self.deploy_config,
            commit_sha=self.commit_sha,
            commit_message="Fix the checkout page" if self.commit_sha else None,
            commit_author="Ada Lovelace <ada@example.com>" if self.commit_sha else None,
        )

    @activity.defn(name="build_image")
    async def build_image(self, request: BuildRequest) -> BuiltImage:
        await self._run("build_image", request, request.deployment_id)
        digest = "sha256:" + hashlib.sha256(request.image.encode()).hexdigest()
        return BuiltImage(
            digest=digest, pinned=f"{request.image_repository}@{digest}", duration_seconds=1, log_line_count=3
        )

    @activity.defn(name="discard_source")
    async def discard_source(self, request: DiscardSource) -> None:
        await self._run("discard_source", request, request.deployment_id)

    @activity.defn(name="save_build_log")
    async def save_build_log(self, deployment_id: str) -> None:
        await self._run("save_build_log", deployment_id, deployment_id)

    @activity.defn(name="set_deployment_status")
    async def set_deployment_status(self, change: StatusUpdate) -> None:
        await self._run("set_deployment_status", change, change.deployment_id)
        self.updates[change.deployment_id].append(change)
        current = self.current.get(change.deployment_id)
        if current is None or not current.is_final:  # like the real one: a final status is kept
            self.current[change.deployment_id] = change.status

    @activity.defn(name="record_replicas")
    async def record_replicas(self, replica_set: ReplicaSet) -> None:
        await self._run("record_replicas", replica_set, replica_set.deployment_id)

    @activity.defn(name="activate_deployment")
    async def activate_deployment(self, change: StatusUpdate) -> None:
        await self._run("activate_deployment", change, change.deployment_id)
        self.updates[change.deployment_id].append(change)
        self.current[change.deployment_id] = DeploymentStatus.ACTIVE

    @activity.defn(name="mark_replicas_removed")
    async def mark_replicas_removed(self, key: RouteKey) -> None:
        await self._run("mark_replicas_removed", key, None)

    @activity.defn(name="resolve_image")
    async def resolve_image(self, image: str) -> ResolvedImage:
        ref = parse_image_reference(image)
        await self._run("resolve_image", image, ref.tag)
        digest = "sha256:" + hashlib.sha256(image.encode()).hexdigest()
        return ResolvedImage(digest=digest, pinned=ref.pinned(digest))

    @activity.defn(name="ensure_replicas")
    async def ensure_replicas(self, batch: ReplicaBatch) -> ReplicaSet:
        deployment_id = batch.specs[0].deployment_id
        await self._run("ensure_replicas", batch, deployment_id)
        self.live_replicas.update({spec.replica_id: deployment_id for spec in batch.specs})
        return _replica_set(batch, healthy=False)

    @activity.defn(name="wait_replicas_healthy")
    async def wait_replicas_healthy(self, batch: ReplicaBatch) -> ReplicaSet:
        await self._run("wait_replicas_healthy", batch, batch.specs[0].deployment_id)
        return _replica_set(batch, healthy=True)

    @activity.defn(name="watch_replicas_stable")
    async def watch_replicas_stable(self, watch: StabilityWatch) -> None:
        await self._run("watch_replicas_stable", watch, watch.replicas[0].deployment_id)

    @activity.defn(name="roll_back_deployment")
    async def roll_back_deployment(self, rollback: Rollback) -> None:
        await self._run("roll_back_deployment", rollback, rollback.failed_deployment_id)
        self.updates[rollback.failed_deployment_id].append(
            StatusUpdate(
                deployment_id=rollback.failed_deployment_id,
                status=DeploymentStatus.FAILED,
                message=rollback.reason,
                failed_step=rollback.failed_step,
            )
        )
        self.current[rollback.failed_deployment_id] = DeploymentStatus.FAILED
        if rollback.previous_deployment_id is not None:
            self.current[rollback.previous_deployment_id] = DeploymentStatus.ACTIVE

    @activity.defn(name="remove_replicas")
    async def remove_replicas(self, ids: ReplicaIds) -> None:
        owners = {self.live_replicas.get(rid) for rid in ids.replica_ids} - {None}
        await self._run("remove_replicas", ids, owners.pop() if len(owners) == 1 else None)
        for rid in ids.replica_ids:
            self.live_replicas.pop(rid, None)

    @activity.defn(name="remove_orphan_replicas")
    async def remove_orphan_replicas(self, query: OrphanQuery) -> list[str]:
        kept = query.keep_deployment_ids
        await self._run("remove_orphan_replicas", query, kept[0] if kept else query.environment_id)
        orphans = sorted(r for r, d in self.live_replicas.items() if d not in query.keep_deployment_ids)
        for rid in orphans:
            del self.live_replicas[rid]
        return orphans

    @activity.defn(name="get_route")
    async def get_route(self, key: RouteKey) -> RouteSpec | None:
        await self._run("get_route", key, None)
        return self.routes.get((key.service_id, key.environment_id))

    @activity.defn(name="publish_route")
    async def publish_route(self, spec: RouteSpec) -> None:
        await self._run("publish_route", spec, spec.deployment_id)
        key = (spec.service_id, spec.environment_id)
        if key in self.routes and self.routes[key].deployment_id != spec.deployment_id:
            self.fallbacks.pop(key, None)
        self.routes[key] = spec

    @activity.defn(name="unpublish_route")
    async def unpublish_route(self, key: RouteKey) -> None:
        await self._run("unpublish_route", key, None)
        self.routes.pop((key.service_id, key.environment_id), None)
        self.fallbacks.pop((key.service_id, key.environment_id), None)

    @activity.defn(name="publish_route_fallback")
    async def publish_route_fallback(self, fallback: RouteFallback) -> None:
        owner = fallback.owner
        await self._run("publish_route_fallback", fallback, owner.deployment_id)
        key = (owner.service_id, owner.environment_id)
        if key in self.routes and self.routes[key].deployment_id == owner.deployment_id:
            self.fallbacks[key] = sorted(fallback.servers)

    @activity.defn(name="clear_route_fallback")
    async def clear_route_fallback(self, owner: RouteOwner) -> None:
        await self._run("clear_route_fallback", owner, owner.deployment_id)
        key = (owner.service_id, owner.environment_id)
        if key in self.routes and self.routes[key].deployment_id == owner.deployment_id:
            self.fallbacks.pop(key, None)

    @activity.defn(name="place_replicas")
    async def place_replicas(self, request: PlacementRequest) -> Placement:
        """All on the fake node, unless a test spreads them over `self.nodes`, round robin."""
        await self._run("place_replicas", request, request.deployment_id)
        if not self.nodes:
            return Placement(groups=[NodeReplicas(node=NodeRef(), replica_ids=request.replica_ids)])
        groups: dict[str, list[str]] = {}
        for index, replica_id in enumerate(request.replica_ids):
            groups.setdefault(self.nodes[index % len(self.nodes)], []).append(replica_id)
        return Placement(
            groups=[
                NodeReplicas(node=NodeRef(node_id=node, address=f"{node}.test:7801"), replica_ids=ids)
                for node, ids in groups.items()
            ]
        )

    @activity.defn(name="stop_service_workflow")
    async def stop_service_workflow(self, key: RouteKey) -> None:
        await self._run("stop_service_workflow", key, key.environment_id)

    @activity.defn(name="images_only_in")
    async def images_only_in(self, environment_id: str) -> list[str]:
        await self._run("images_only_in", environment_id, environment_id)
        return list(self.environment_images)

    @activity.defn(name="delete_image")
    async def delete_image(self, pinned: str) -> None:
        await self._run("delete_image", pinned, None)

    @activity.defn(name="delete_environment")
    async def delete_environment(self, environment_id: str) -> None:
        await self._run("delete_environment", environment_id, environment_id)

    @activity.defn(name="load_scale_state")
    async def load_scale_state(self, target: ScaleTarget) -> ScaleState:
        await self._run("load_scale_state", target, target.deployment_id)
        request = self.deploy_requests[target.deployment_id]
        digest = "sha256:" + hashlib.sha256((request.image or "").encode()).hexdigest()
        running = sorted(r for r, d in self.live_replicas.items() if d == target.deployment_id)
        return ScaleState(
            request=request,
            image=parse_image_reference(request.image or "").pinned(digest),
            replicas=[
                LiveReplica(replica_id=r, address=f"{r}.{NODE}:{request.port}", container_id=f"container-{r}")
                for r in running
            ],
        )

    @activity.defn(name="place_added_replicas")
    async def place_added_replicas(self, request: PlacementRequest) -> Placement:
        await self._run("place_added_replicas", request, request.deployment_id)
        return Placement(groups=[NodeReplicas(node=NodeRef(), replica_ids=request.replica_ids)])

    @activity.defn(name="set_replica_rows")
    async def set_replica_rows(self, rows: ReplicaRows) -> None:
        await self._run("set_replica_rows", rows, rows.deployment_id)
        self.replica_rows.update(dict.fromkeys(rows.replica_ids, rows.state))

    @activity.defn(name="record_scale")
    async def record_scale(self, target: ScaleTarget) -> None:
        await self._run("record_scale", target, target.deployment_id)
        self.scaled[target.deployment_id] = target.replicas

    @activity.defn(name="wait_route_live")
    async def wait_route_live(self, spec: RouteSpec) -> None:
        await self._run("wait_route_live", spec, spec.deployment_id)

    async def _run(self, name: str, arg: Any, deployment_id: str | None) -> None:
        call = Call(name, arg, deployment_id)
        self.calls.append(call)
        for rule in [r for r in self._rules if r.matches(call)]:
            if rule.gate is not None:
                rule.gate.entered.set()
                await _hold(rule.gate)
            if rule.error is not None:
                raise rule.error()


async def _hold(gate: Gate) -> None:
    """Wait until the gate opens, heartbeating so that a cancellation from Temporal reaches us."""
    while not gate.opened.is_set():
        activity.heartbeat()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await gate.opened.wait()


def _replica_set(batch: ReplicaBatch, *, healthy: bool) -> ReplicaSet:
    node = batch.node.node_id or NODE
    return ReplicaSet(
        deployment_id=batch.specs[0].deployment_id,
        node=node,
        replicas=[
            ReplicaStatus(
                replica_id=spec.replica_id,
                state=ReplicaState.RUNNING,
                healthy=healthy,
                address=f"{spec.replica_id}.{node}:{spec.port}",
                container_id=f"container-{spec.replica_id}",
                deployment_id=spec.deployment_id,
            )
            for spec in batch.specs
        ],
    )
