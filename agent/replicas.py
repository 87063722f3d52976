"""Ensure-style replica lifecycle on one node: every call is safe to repeat any number of times.

PUT    ensure:  image present? --no--> pull by digest
                container exists? --no--> create (409 from Docker = someone else just did)
                running? --no--> start
                -> status (probed)
DELETE remove:  SIGTERM, SIGKILL after the grace, remove; a missing container is already removed.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from agent import containers, host
from agent.errors import AgentFailure
from agent.health import probe
from agent.logs import ServiceLogs
from agent.runtime import Conflict, DockerError, DockerUnavailable, PullFailed, Refused, Runtime
from agent.settings import AgentSettings
from core.contracts import Heartbeat, NodeInfo, ReplicaLog, ReplicaSpec, ReplicaState, ReplicaStatus

T = TypeVar("T")
log = logging.getLogger(__name__)

# Docker states in which a container needs `start` to run again. "restarting" is Docker's own
# restart policy at work; "paused" and "dead" need a human and are only reported.
_STARTABLE = {"created", "exited"}
# How long a create that lost a name race waits for the winner's container to become visible.
_CONCURRENT_CREATE_SECONDS = 10.0


class Replicas:
    def __init__(self, settings: AgentSettings, runtime: Runtime, logs: ServiceLogs | None = None) -> None:
        self.settings = settings
        self.runtime = runtime
        # Where a removed container's logs are kept first (agent/logs.py); None: they go with it.
        self.kept_logs = logs
        # One lock per replica id, alive only while some call holds or awaits it.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def ensure(self, spec: ReplicaSpec) -> ReplicaStatus:
        if problem := containers.image_problem(spec.image):
            raise AgentFailure(422, "validate", f"image: {problem}", spec.replica_id)
        async with self._lock(spec.replica_id):
            attrs = await self._inspect(spec.replica_id)
            if attrs is None:
                await self._ensure_image(spec)
                attrs = await self._create(spec)
            self._check_same_spec(attrs, spec)
            if attrs["State"]["Status"] in _STARTABLE:
                await self._docker("start", spec.replica_id, self.runtime.start, attrs["Id"])
                attrs = await self._inspect(spec.replica_id)
                if attrs is None:
                    raise AgentFailure(
                        500, "start", "the container was removed while starting", spec.replica_id
                    )
        return await self._probed(attrs)

    async def start(self, replica_id: str) -> ReplicaStatus:
        """Start a replica that exists but is stopped (by `dockyard down`, `docker stop`, a reboot), as it
        was created: same spec, same container. Running already is fine; a missing one is 404."""
        async with self._lock(replica_id):
            attrs = await self._inspect(replica_id)
            name = containers.container_name(replica_id)
            if attrs is None:
                reason = f"no container {name} on node {self.settings.node_name}"
                raise AgentFailure(404, "find", reason, replica_id)
            if containers.labels_of(attrs).get(containers.LABEL_MANAGED) != "true":
                raise AgentFailure(409, "start", f"container {name} is not managed by Dockyard", replica_id)
            if attrs["State"]["Status"] in _STARTABLE:
                try:
                    await asyncio.to_thread(self.runtime.start, attrs["Id"])
                except DockerUnavailable as exc:
                    raise AgentFailure(503, "start", exc.reason, replica_id) from None
                except DockerError as exc:
                    # An engine restart can leave a container it cannot start again (a stale network
                    # endpoint: "failed to update store for object type *libnetwork.endpoint"). The replica
                    # is its spec, not that container: make it anew from the same configuration.
                    await self._recreate(replica_id, attrs, exc.reason)
                attrs = await self._inspect(replica_id)
                if attrs is None:
                    raise AgentFailure(500, "start", "the container was removed while starting", replica_id)
        return containers.replica_status(attrs, self.settings.node_address)

    async def _recreate(self, replica_id: str, attrs: dict[str, Any], why: str) -> None:
        name = containers.container_name(replica_id)
        kwargs = containers.recreate_kwargs(attrs)
        log.warning("replica %s could not start again (%s): recreating its container", replica_id, why)
        if self.kept_logs is not None:
            await self.kept_logs.keep(attrs)
        await self._docker("remove", replica_id, self.runtime.remove, name, 0)
        await self._docker("create", replica_id, self.runtime.create, kwargs)
        await self._docker("start", replica_id, self.runtime.start, name)

    async def status(self, replica_id: str) -> ReplicaStatus:
        attrs = await self._inspect(replica_id)
        if attrs is None:
            reason = f"no container {containers.container_name(replica_id)} on node {self.settings.node_name}"
            raise AgentFailure(404, "find", reason, replica_id)
        return await self._probed(attrs)

    async def list(
        self,
        service_id: str | None = None,
        environment_id: str | None = None,
        deployment_id: str | None = None,
    ) -> list[ReplicaStatus]:
        """Every managed container matching the ids given. Not probed: `healthy` is always False here."""
        filters = containers.managed_filters(service_id, environment_id, deployment_id)
        found = await self._docker("list", None, self.runtime.list, filters)
        statuses = [containers.replica_status(attrs, self.settings.node_address) for attrs in found]
        return sorted(statuses, key=lambda status: status.replica_id)

    async def remove(self, replica_id: str, grace_seconds: int | None = None) -> None:
        """Stop, keep its logs, and remove; with no grace given, the replica's own (its service's draining
        seconds)."""
        async with self._lock(replica_id):
            name = containers.container_name(replica_id)
            if self.kept_logs is not None and (attrs := await self._inspect(replica_id)) is not None:
                await self._docker("remove", replica_id, self.runtime.stop, name, grace_seconds)
                await self.kept_logs.keep(attrs)
            await self._docker("remove", replica_id, self.runtime.remove, name, grace_seconds)

    async def logs(self, replica_id: str, tail: int) -> ReplicaLog:
        """The last `tail` lines of the replica's output: why a crashing one exits."""
        if await self._inspect(replica_id) is None:
            reason = f"no container {containers.container_name(replica_id)} on node {self.settings.node_name}"
            raise AgentFailure(404, "find", reason, replica_id)
        name = containers.container_name(replica_id)
        lines = await self._docker("logs", replica_id, self.runtime.logs, name, tail)
        return ReplicaLog(replica_id=replica_id, lines=list(lines))

    async def heartbeat(self) -> Heartbeat:
        capacity, usage = await asyncio.to_thread(host.capacity_and_usage)
        return Heartbeat(
            node=await self.node(),
            capacity=capacity,
            usage=usage,
            labels=self.settings.labels,
            replicas=await self.list(),
        )

    async def node(self) -> NodeInfo:
        version = await self._docker("node", None, self.runtime.version)
        return NodeInfo(
            name=self.settings.node_name, address=self.settings.node_address, docker_version=version
        )

    # --- steps -------------------------------------------------------------------------------------

    async def _inspect(self, replica_id: str) -> dict[str, Any] | None:
        name = containers.container_name(replica_id)
        return await self._docker("inspect", replica_id, self.runtime.inspect, name)

    async def _ensure_image(self, spec: ReplicaSpec) -> None:
        if await self._docker("pull", spec.replica_id, self.runtime.has_image, spec.image):
            return
        # Credentials go to the platform registry only, never to whatever host an image names.
        own = containers.image_registry(spec.image) == self.settings.registry_host
        auth = self.settings.registry_auth() if own else None
        try:
            await asyncio.to_thread(self.runtime.pull, spec.image, auth)
        except PullFailed as exc:
            raise AgentFailure(502, "pull", f"{exc.reason} for image {spec.image}", spec.replica_id) from None
        except DockerUnavailable as exc:
            raise AgentFailure(503, "pull", exc.reason, spec.replica_id) from None
        except DockerError as exc:
            raise AgentFailure(502, "pull", f"{exc.reason} for image {spec.image}", spec.replica_id) from None

    async def _create(self, spec: ReplicaSpec) -> dict[str, Any]:
        kwargs = containers.create_kwargs(
            spec, self.settings.node_address, self.settings.stop_timeout_seconds
        )
        try:
            await asyncio.to_thread(self.runtime.create, kwargs)
        except Conflict:
            # Another process created it first: ensure means "exists", not "I made it". Docker reserves
            # the name before the container is registered, so the winner's container may not be
            # inspectable yet: wait for it to appear.
            return await self._created_elsewhere(spec.replica_id)
        except DockerUnavailable as exc:
            raise AgentFailure(503, "create", exc.reason, spec.replica_id) from None
        except Refused as exc:
            raise AgentFailure(
                422, "create", f"Docker refused the container: {exc.reason}", spec.replica_id
            ) from None
        except DockerError as exc:
            raise AgentFailure(500, "create", exc.reason, spec.replica_id) from None
        attrs = await self._inspect(spec.replica_id)
        if attrs is None:
            raise AgentFailure(
                500, "create", "the container was removed right after it was created", spec.replica_id
            )
        return attrs

    async def _created_elsewhere(self, replica_id: str) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + _CONCURRENT_CREATE_SECONDS
        while (attrs := await self._inspect(replica_id)) is None:
            if asyncio.get_running_loop().time() > deadline:
                reason = (
                    f"Docker reports a container named {containers.container_name(replica_id)} "
                    f"but it did not appear within {_CONCURRENT_CREATE_SECONDS}s"
                )
                raise AgentFailure(500, "create", reason, replica_id)
            await asyncio.sleep(0.05)
        return attrs

    def _check_same_spec(self, attrs: dict[str, Any], spec: ReplicaSpec) -> None:
        labels = containers.labels_of(attrs)
        name = containers.container_name(spec.replica_id)
        if labels.get(containers.LABEL_MANAGED) != "true":
            raise AgentFailure(
                409, "ensure", f"container {name} exists and is not managed by Dockyard", spec.replica_id
            )
        if labels.get(containers.LABEL_SPEC) != containers.spec_fingerprint(spec):
            raise AgentFailure(
                409,
                "ensure",
                f"replica {spec.replica_id} already runs a different spec "
                f"(image {attrs['Config']['Image']}); "
                "replicas are immutable: give the new spec a new replica id",
                spec.replica_id,
            )

    async def _probed(self, attrs: dict[str, Any]) -> ReplicaStatus:
        status = containers.replica_status(attrs, self.settings.node_address)
        if status.state is not ReplicaState.RUNNING or status.address is None:
            return status
        direct = containers.container_address(attrs)
        check = containers.health_check_of(attrs)
        result = await (probe(direct, check, direct=True) if direct else probe(status.address, check))
        if result.healthy:
            return status.model_copy(update={"healthy": True})
        return status.model_copy(update={"healthy": False, "message": status.message or result.evidence})

    async def _docker(self, step: str, replica_id: str | None, call: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(call, *args)
        except DockerUnavailable as exc:
            raise AgentFailure(503, step, exc.reason, replica_id) from None
        except Refused as exc:
            # Docker's 4xx: the request is wrong as it stands (a limit beyond the host, say), so the
            # caller must not retry it; Docker's own words tell the user what to change.
            raise AgentFailure(422, step, f"Docker refused it: {exc.reason}", replica_id) from None
        except DockerError as exc:
            raise AgentFailure(500, step, exc.reason, replica_id) from None

    def _lock(self, replica_id: str) -> asyncio.Lock:
        lock = self._locks.get(replica_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[replica_id] = lock
        return lock
