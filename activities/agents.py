"""Activities that drive node agents: ensure replicas, wait until healthy, remove them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import NodeRef, OrphanQuery, ReplicaBatch, ReplicaIds, ReplicaSet, StabilityWatch
from activities.deploy_workflows import closed_deploys
from activities.heartbeat import heartbeating
from core.agent_client import AgentCallError, AgentClient, client_for
from core.contracts import DeploymentStatus, ReplicaSpec, ReplicaState, ReplicaStatus
from core.db import Database
from core.models import Deployment, Node, RevokedCertificate
from core.reconcile import DeploymentFacts, deploys_to_check, unowned_replicas
from core.scheduler import NodeState
from core.secrets import SecretKeyMissing, secret_box
from core.settings import Settings
from core.stability import HealthPolicy, Streak, Verdict, Watch, crash_reason, judge_health, judge_stability

PROBE_INTERVAL_SECONDS = 0.05
# Through the stability window: a probe every quarter second; a replica whose probes fail for this long,
# without a healthy answer between, is unstable (a slow answer or two on a busy node is not).
STABILITY_PROBE_SECONDS = 0.25
UNHEALTHY_SECONDS = 5.0
# How long a crashed replica's exit code is waited for (Docker shows it only while the container is down).
EXIT_CODE_WAIT_SECONDS = 3.0
# A deployment's own workflow has cleaned up long before this after it ended; what is left is unowned.
# A deployment replaced at a cut-over keeps its replicas through the new one's stability window (to roll
# back to): the grace counts from the end of that window.
RECONCILE_GRACE = timedelta(seconds=60)


class AgentActivities:
    """Each call goes to one node's agent: an enrolled node over mutual TLS (its certificate must name
    the node expected, and not be revoked), or the local agent of a single-machine installation."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db

    @asynccontextmanager
    async def agent_for(self, node: NodeRef) -> AsyncIterator[AgentClient]:
        if node.node_id is not None and node.address is None:
            raise ApplicationError(f"node {node.node_id} has no agent address", non_retryable=True)
        revoked = await self._revoked_serials() if node.node_id is not None else []
        async with client_for(self.settings, node.node_id, node.address, revoked) as agent:
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
        async with self.agent_for(batch.node) as agent, heartbeating():
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
        try:
            variables = secret_box(self.settings).unseal(spec.sealed_env)
        except (SecretKeyMissing, ValueError) as exc:
            raise ApplicationError(
                f"the service's variables cannot be read on this worker: {exc}",
                type="SecretKeyMissing",
                non_retryable=True,
            ) from None
        return spec.model_copy(update={"env": {**variables, **spec.env}, "sealed_env": None})

    @activity.defn
    async def wait_replicas_healthy(self, batch: ReplicaBatch) -> ReplicaSet:
        """Probe until every replica is healthy (core/stability.py), or fail with the replica that is not
        and why: a crash loop at once, with its exit code and the last lines of its log; otherwise once
        the health timeout has passed, counted from the first attempt (a retry does not restart it)."""
        loop = asyncio.get_running_loop()
        started = _first_attempt_started()
        deadline = loop.time() + max(0.0, started + self.settings.health_timeout_seconds - time.time())
        policy = self._health_policy(batch)
        pending = {spec.replica_id for spec in batch.specs}
        streaks = dict.fromkeys(pending, Streak())
        healthy: dict[str, ReplicaStatus] = {}
        seen: dict[str, str] = {}  # the last thing each probe saw
        async with self.agent_for(batch.node) as agent:
            while pending:
                activity.heartbeat(started)
                for replica_id in sorted(pending):
                    status = await self._status(agent, replica_id)
                    streaks[replica_id], verdict = judge_health(
                        streaks[replica_id], status, loop.time(), policy
                    )
                    if verdict is Verdict.CRASHED:
                        raise await self._crashed(agent, status)
                    if verdict is Verdict.HEALTHY:
                        healthy[replica_id] = status
                        pending.discard(replica_id)
                    elif status.message:
                        seen[replica_id] = status.message
                if pending and loop.time() > deadline:
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

    def _health_policy(self, batch: ReplicaBatch) -> HealthPolicy:
        """An HTTP check's 2xx/3xx answer is proof enough; a TCP connect must hold over a streak."""
        tcp_only = any(spec.health_check.path is None for spec in batch.specs)
        stable = self.settings.health_stable_seconds if tcp_only else 0.0
        return HealthPolicy(
            crash_loop_restarts=self.settings.crash_loop_restarts,
            stable_seconds=stable,
            stable_probes=3 if stable else 1,
        )

    async def _status(self, agent: AgentClient, replica_id: str) -> ReplicaStatus:
        status = await agent.replica(replica_id)
        if status is None:
            raise ApplicationError(
                f"node {agent.node}: replica {replica_id} disappeared while starting", type="ReplicaLost"
            )
        return status

    async def _crashed(self, agent: AgentClient, status: ReplicaStatus) -> ApplicationError:
        status = await _with_exit_code(agent, status)
        lines = await agent.replica_logs(status.replica_id, self.settings.crash_log_lines)
        return ApplicationError(
            f"node {agent.node}: replica {status.replica_id} {crash_reason(status, lines)}",
            {"exit_code": status.exit_code, "restart_count": status.restart_count, "log": lines},
            type="ReplicaCrashLoop" if status.state is not ReplicaState.EXITED else "ReplicaExited",
            non_retryable=True,
        )

    @activity.defn
    async def watch_replicas_stable(self, watch: StabilityWatch) -> None:
        """Watch the replicas, now serving, through the stability window: fail (non-retryable) with the
        first one that restarts, exits or keeps failing its probe, and why; answer once the window has
        passed (counted from the first attempt: a retry does not restart it)."""
        loop = asyncio.get_running_loop()
        started = _first_attempt_started()
        left = started + self.settings.stability_window_seconds - time.time()
        if left <= 0:
            # A retry after the window (the worker, its agent or the platform was down meanwhile): what
            # the replicas do now is no longer the deploy's window, and a replica stopped with the
            # platform is started again by the fleet watch.
            return
        deadline = loop.time() + left
        watches = {r.replica_id: Watch(restart_count=r.restart_count) for r in watch.replicas}
        async with self.agent_for(watch.node) as agent:
            while True:
                activity.heartbeat(started)
                for replica_id in sorted(watches):
                    status = await agent.replica(replica_id)
                    watches[replica_id], problem = judge_stability(
                        watches[replica_id], status, loop.time(), UNHEALTHY_SECONDS
                    )
                    if problem is not None:
                        raise await self._unstable(agent, replica_id, problem, status)
                if loop.time() >= deadline:
                    return
                await asyncio.sleep(min(STABILITY_PROBE_SECONDS, max(0.0, deadline - loop.time())))

    async def _unstable(
        self, agent: AgentClient, replica_id: str, problem: str, status: ReplicaStatus | None
    ) -> ApplicationError:
        if status is not None:
            status = await _with_exit_code(agent, status)
            if status.exit_code is not None and "with code" not in problem:
                problem = f"{problem}; exit code {status.exit_code}"
        lines = await agent.replica_logs(replica_id, self.settings.crash_log_lines) if status else []
        tail = " | ".join(line.strip() for line in lines if line.strip())
        return ApplicationError(
            f"node {agent.node}: replica {replica_id} was not stable for "
            f"{self.settings.stability_window_seconds:g}s after the cut-over: {problem}"
            + (f"; last lines of its log: {tail}" if tail else ""),
            {"log": lines},
            type="ReplicaUnstable",
            non_retryable=True,
        )

    @activity.defn
    async def remove_replicas(self, ids: ReplicaIds) -> None:
        async with self.agent_for(ids.node) as agent:
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
        async with self.agent_for(node) as agent:
            owned = await agent.replicas(service_id=query.service_id, environment_id=query.environment_id)
            orphans = [r.replica_id for r in owned if r.deployment_id not in query.keep_deployment_ids]
            await asyncio.gather(*(agent.remove_replica(rid) for rid in orphans))
        return orphans

    @activity.defn
    async def remove_unowned_replicas(self) -> list[str]:
        """On every enrolled node that answers, remove the replicas no deployment owns any more
        (core/reconcile.py): those a deploy's own sweep missed, e.g. on a node that was DOWN meanwhile.
        Answers their ids. Not on the local agent: its Docker Engine may be shared (a developer's own)."""
        nodes = [node for node in await self._nodes() if node.node_id is not None]
        async with heartbeating():
            found = await asyncio.gather(*(self._reconcile(node) for node in nodes))
        return [replica_id for removed in found for replica_id in removed]

    async def _reconcile(self, node: NodeRef) -> list[str]:
        try:
            async with self.agent_for(node) as agent:
                owned = await agent.replicas()
                deployments = await self._deployment_facts({r.deployment_id or "" for r in owned})
                now = datetime.now(UTC)
                grace = RECONCILE_GRACE + timedelta(seconds=self.settings.stability_window_seconds)
                releases = deploys_to_check(owned, deployments, now, grace)
                closed = await closed_deploys(activity.client(), releases) if releases else set()
                unowned = unowned_replicas(owned, deployments, now, grace, closed)
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
                select(
                    Deployment.id,
                    Deployment.status,
                    Deployment.finished_at,
                    Deployment.updated_at,
                    Deployment.workflow_id,
                ).where(Deployment.id.in_(deployment_ids))
            )
            return {
                id_: DeploymentFacts(DeploymentStatus(status), finished_at or updated_at, workflow_id)
                for id_, status, finished_at, updated_at, workflow_id in rows
            }


def _first_attempt_started() -> float:
    """When the first attempt of this step started (wall clock): carried in the heartbeat details, so a
    retried attempt keeps the deadline of the first instead of starting a new one."""
    details = activity.info().heartbeat_details
    if details and isinstance(details[0], int | float):
        return float(details[0])
    return time.time()


async def _with_exit_code(agent: AgentClient, status: ReplicaStatus) -> ReplicaStatus:
    """The status once it shows how the replica exits: Docker only tells while the container is down
    (restarting, exited), and a crash-looping one is down again within a few seconds."""
    deadline = asyncio.get_running_loop().time() + EXIT_CODE_WAIT_SECONDS
    while status.exit_code is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(PROBE_INTERVAL_SECONDS)
        status = await agent.replica(status.replica_id) or status
    return status


def _as_activity_error(exc: AgentCallError) -> Exception:
    # A 4xx from the agent is a request it will never accept (bad image, bad spec): do not retry.
    if exc.is_client_error:
        return ApplicationError(str(exc), type=f"Agent{exc.step.title()}Error", non_retryable=True)
    return exc
