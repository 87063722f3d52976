"""Activities that drive node agents: ensure replicas, wait until healthy, remove them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent_client import AgentCallError, AgentClient
from activities.contracts import OrphanQuery, ReplicaBatch, ReplicaIds, ReplicaSet
from activities.heartbeat import heartbeating
from core.contracts import ReplicaSpec, ReplicaState, ReplicaStatus
from core.secrets import SecretBox, SecretKeyMissing
from core.settings import Settings

PROBE_INTERVAL_SECONDS = 0.05


class AgentActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @asynccontextmanager
    async def _agent(self) -> AsyncIterator[AgentClient]:
        token = self.settings.agent_token.get_secret_value() if self.settings.agent_token else None
        async with AgentClient(self.settings.agent_url, token) as agent:
            yield agent

    @activity.defn
    async def ensure_replicas(self, batch: ReplicaBatch) -> ReplicaSet:
        """Pull, create and start every replica (idempotent: the agent ensures by replica id)."""
        specs = [self._opened(spec) for spec in batch.specs]
        async with self._agent() as agent, heartbeating():
            try:
                statuses = await asyncio.gather(*(agent.ensure_replica(spec) for spec in specs))
            except AgentCallError as exc:
                raise _as_activity_error(exc) from None
        return ReplicaSet(deployment_id=batch.specs[0].deployment_id, node=agent.node, replicas=statuses)

    def _opened(self, spec: ReplicaSpec) -> ReplicaSpec:
        """The spec as the agent runs it: the service's variables unsealed, Dockyard's own on top."""
        if spec.sealed_env is None:
            return spec
        key = self.settings.secret_key.get_secret_value() if self.settings.secret_key else None
        try:
            variables = SecretBox(key).unseal(spec.sealed_env)
        except (SecretKeyMissing, ValueError) as exc:
            raise ApplicationError(
                f"the service's variables cannot be read on this worker: {exc}",
                type="SecretKeyMissing",
                non_retryable=True,
            ) from None
        return spec.model_copy(update={"env": {**variables, **spec.env}, "sealed_env": None})

    @activity.defn
    async def wait_replicas_healthy(self, batch: ReplicaBatch) -> ReplicaSet:
        """Probe until every replica is healthy, or fail with the replica that is not and why."""
        deadline = asyncio.get_running_loop().time() + self.settings.health_timeout_seconds
        pending = {spec.replica_id for spec in batch.specs}
        healthy: dict[str, ReplicaStatus] = {}
        async with self._agent() as agent:
            while pending:
                activity.heartbeat(sorted(pending))
                for replica_id in sorted(pending):
                    status = await agent.replica(replica_id)
                    if status is None:
                        raise ApplicationError(
                            f"node {agent.node}: replica {replica_id} disappeared while starting",
                            type="ReplicaLost",
                        )
                    if status.healthy:
                        healthy[replica_id] = status
                        pending.discard(replica_id)
                    elif status.state is ReplicaState.EXITED:
                        raise ApplicationError(
                            f"node {agent.node}: replica {replica_id} exited before it became healthy"
                            + (f": {status.message}" if status.message else ""),
                            type="ReplicaExited",
                            non_retryable=True,
                        )
                if pending and asyncio.get_running_loop().time() > deadline:
                    raise ApplicationError(
                        f"node {agent.node}: replicas {', '.join(sorted(pending))} not healthy within "
                        f"{self.settings.health_timeout_seconds:g}s",
                        type="HealthCheckTimeout",
                        non_retryable=True,
                    )
                if pending:
                    await asyncio.sleep(PROBE_INTERVAL_SECONDS)
        return ReplicaSet(
            deployment_id=batch.specs[0].deployment_id,
            node=agent.node,
            replicas=[healthy[spec.replica_id] for spec in batch.specs],
        )

    @activity.defn
    async def remove_replicas(self, ids: ReplicaIds) -> None:
        async with self._agent() as agent:
            try:
                await asyncio.gather(
                    *(agent.remove_replica(rid, ids.grace_seconds) for rid in ids.replica_ids)
                )
            except AgentCallError as exc:
                raise _as_activity_error(exc) from None

    @activity.defn
    async def remove_orphan_replicas(self, query: OrphanQuery) -> list[str]:
        """Remove every replica of the service+environment that belongs to no kept deployment."""
        async with self._agent() as agent, heartbeating():
            owned = await agent.replicas(service_id=query.service_id, environment_id=query.environment_id)
            orphans = [r.replica_id for r in owned if r.deployment_id not in query.keep_deployment_ids]
            grace = self.settings.drain_seconds + 10
            await asyncio.gather(*(agent.remove_replica(rid, grace) for rid in orphans))
        return orphans


def _as_activity_error(exc: AgentCallError) -> Exception:
    # A 4xx from the agent is a request it will never accept (bad image, bad spec): do not retry.
    if exc.is_client_error:
        return ApplicationError(str(exc), type=f"Agent{exc.step.title()}Error", non_retryable=True)
    return exc
