"""Activities that drive node agents: ensure replicas, wait until healthy, remove them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent_client import AgentCallError, AgentClient, AgentTLS
from activities.contracts import NodeRef, OrphanQuery, ReplicaBatch, ReplicaIds, ReplicaSet
from activities.heartbeat import heartbeating
from core.contracts import DeploymentStatus, ReplicaSpec, ReplicaState, ReplicaStatus
from core.db import Database
from core.models import Deployment, Node, RevokedCertificate
from core.reconcile import DeploymentFacts, unowned_replicas
from core.scheduler import NodeState
from core.secrets import SecretBox, SecretKeyMissing
from core.settings import Settings

PROBE_INTERVAL_SECONDS = 0.05
# A deployment's own workflow has cleaned up long before this after it ended; what is left is unowned.
RECONCILE_GRACE = timedelta(seconds=60)


class AgentActivities:
    """Each call goes to one node's agent: an enrolled node over mutual TLS (its certificate must name
    the node expected, and not be revoked), or the local agent of a single-machine installation."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db

    @asynccontextmanager
    async def _agent(self, node: NodeRef) -> AsyncIterator[AgentClient]:
        if node.node_id is None:
            token = self.settings.agent_token.get_secret_value() if self.settings.agent_token else None
            async with AgentClient(self.settings.agent_url, token) as agent:
                yield agent
            return
        if node.address is None:
            raise ApplicationError(f"node {node.node_id} has no agent address", non_retryable=True)
        tls = AgentTLS.from_pki_dir(self.settings.pki_dir, node.node_id, await self._revoked_serials())
        async with AgentClient.for_node(node.address, tls) as agent:
            yield agent

    async def _revoked_serials(self) -> list[int]:
        """Read for every client: a node removed a moment ago is refused on the next call."""
        if self.db is None:
            return []
        async with self.db.session() as session:
            return [int(serial, 16) for serial in await session.scalars(select(RevokedCertificate.serial))]

    async def _nodes(self) -> list[NodeRef]:
        """Every agent a sweep visits: the local one, and each enrolled node not removed or DOWN."""
        targets = [NodeRef()]
        if self.db is not None:
            async with self.db.session() as session:
                nodes = await session.scalars(
                    select(Node).where(Node.removed_at.is_(None), Node.state != NodeState.DOWN.value)
                )
                targets += [NodeRef(node_id=node.id, address=node.address) for node in nodes]
        return targets

    @activity.defn
    async def ensure_replicas(self, batch: ReplicaBatch) -> ReplicaSet:
        """Pull, create and start every replica (idempotent: the agent ensures by replica id)."""
        specs = [self._opened(spec) for spec in batch.specs]
        async with self._agent(batch.node) as agent, heartbeating():
            try:
                statuses = await asyncio.gather(*(agent.ensure_replica(spec) for spec in specs))
            except AgentCallError as exc:
                raise _as_activity_error(exc) from None
        return ReplicaSet(
            deployment_id=batch.specs[0].deployment_id,
            node=batch.node.node_id or agent.node,
            replicas=statuses,
        )

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
        seen: dict[str, str] = {}  # the last thing each probe saw
        async with self._agent(batch.node) as agent:
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
                    elif status.message:
                        seen[replica_id] = status.message
                if pending and asyncio.get_running_loop().time() > deadline:
                    raise ApplicationError(
                        f"node {agent.node}: replicas {', '.join(sorted(pending))} not healthy within "
                        f"{self.settings.health_timeout_seconds:g}s"
                        + "".join(f"; {rid}: {seen[rid]}" for rid in sorted(pending) if rid in seen),
                        type="HealthCheckTimeout",
                        non_retryable=True,
                    )
                if pending:
                    await asyncio.sleep(PROBE_INTERVAL_SECONDS)
        return ReplicaSet(
            deployment_id=batch.specs[0].deployment_id,
            node=batch.node.node_id or agent.node,
            replicas=[healthy[spec.replica_id] for spec in batch.specs],
        )

    @activity.defn
    async def remove_replicas(self, ids: ReplicaIds) -> None:
        async with self._agent(ids.node) as agent:
            try:
                await asyncio.gather(
                    *(agent.remove_replica(rid, ids.grace_seconds) for rid in ids.replica_ids)
                )
            except AgentCallError as exc:
                raise _as_activity_error(exc) from None

    @activity.defn
    async def remove_orphan_replicas(self, query: OrphanQuery) -> list[str]:
        """Remove, on every agent, each replica of the service+environment that belongs to no kept
        deployment. An agent that cannot be reached is skipped (logged): its orphans go when it is
        back, by a later sweep."""
        async with heartbeating():
            found = await asyncio.gather(*(self._sweep(node, query) for node in await self._nodes()))
        return [replica_id for removed in found for replica_id in removed]

    async def _sweep(self, node: NodeRef, query: OrphanQuery) -> list[str]:
        try:
            return await self._remove_orphans_on(node, query)
        except AgentCallError as exc:
            if exc.status_code is not None or exc.step == "tls":
                raise _as_activity_error(exc) from None
            activity.logger.warning("orphan sweep skipped %s: %s", node.node_id or "local agent", exc)
            return []

    async def _remove_orphans_on(self, node: NodeRef, query: OrphanQuery) -> list[str]:
        async with self._agent(node) as agent:
            owned = await agent.replicas(service_id=query.service_id, environment_id=query.environment_id)
            orphans = [r.replica_id for r in owned if r.deployment_id not in query.keep_deployment_ids]
            await asyncio.gather(*(agent.remove_replica(rid) for rid in orphans))
        return orphans

    @activity.defn
    async def remove_unowned_replicas(self) -> list[str]:
        """On every enrolled node that answers, remove the replicas no deployment owns any more
        (core/reconcile.py): those a release's own sweep missed, e.g. on a node that was DOWN meanwhile.
        Answers their ids. Not on the local agent: its Docker Engine may be shared (a developer's own)."""
        nodes = [node for node in await self._nodes() if node.node_id is not None]
        async with heartbeating():
            found = await asyncio.gather(*(self._reconcile(node) for node in nodes))
        return [replica_id for removed in found for replica_id in removed]

    async def _reconcile(self, node: NodeRef) -> list[str]:
        try:
            async with self._agent(node) as agent:
                owned = await agent.replicas()
                deployments = await self._deployment_facts({r.deployment_id or "" for r in owned})
                unowned = unowned_replicas(owned, deployments, datetime.now(UTC), RECONCILE_GRACE)
                for replica in unowned:
                    activity.logger.info(
                        "node %s: removing %s (%s)", agent.node, replica.replica_id, replica.reason
                    )
                await asyncio.gather(*(agent.remove_replica(replica.replica_id) for replica in unowned))
        except AgentCallError as exc:
            activity.logger.warning("reconcile skipped %s: %s", node.node_id or "local agent", exc)
            return []
        return [replica.replica_id for replica in unowned]

    async def _deployment_facts(self, deployment_ids: set[str]) -> dict[str, DeploymentFacts]:
        if self.db is None or not deployment_ids:
            return {}
        async with self.db.session() as session:
            rows = await session.execute(
                select(Deployment.id, Deployment.status, Deployment.finished_at, Deployment.updated_at).where(
                    Deployment.id.in_(deployment_ids)
                )
            )
            return {
                id_: DeploymentFacts(DeploymentStatus(status), finished_at or updated_at)
                for id_, status, finished_at, updated_at in rows
            }


def _as_activity_error(exc: AgentCallError) -> Exception:
    # A 4xx from the agent is a request it will never accept (bad image, bad spec): do not retry.
    if exc.is_client_error:
        return ApplicationError(str(exc), type=f"Agent{exc.step.title()}Error", non_retryable=True)
    return exc
