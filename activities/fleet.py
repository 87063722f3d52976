"""Activities that watch the fleet: which nodes answer, which went DOWN, and the redeploys that bring
the replicas a DOWN node ran back on the others.

Agents send heartbeats to the agent gateway (api/gateway.py); a node with none for
`node_down_after_seconds` is DOWN: it takes no new replicas, and every service that had a replica there
is redeployed, so the scheduler places its replicas on the nodes left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from temporalio import activity

from activities.agents import AgentActivities
from activities.contracts import NodeRef
from activities.routing import LOCAL_NODE
from core.agent_client import AgentCallError
from core.contracts import ReplicaState
from core.db import Database
from core.fleet import active_deployments_on, mark_missing, missing_replicas_of_active_deployments
from core.models import LIVE_REPLICA_STATES, Node, Replica
from core.scheduler import NodeState
from core.settings import Settings
from domain import deployments
from domain.actors import control_plane
from domain.errors import Conflict, NotFound
from domain.temporal import TemporalConnection

# Who the audit log names for the redeploys the fleet watch makes.
ACTOR = control_plane("fleet-watch")


class FleetActivities:
    def __init__(self, db: Database, settings: Settings, temporal: TemporalConnection) -> None:
        self.db = db
        self.settings = settings
        self.temporal = temporal
        self._agents = AgentActivities(settings, db)

    # The name FleetWatchWorkflow histories call it by (it once probed the agents itself).
    @activity.defn(name="probe_nodes")
    async def mark_silent_nodes(self) -> list[str]:
        """Mark DOWN every current node with no heartbeat for longer than the limit (the agent gateway
        records them, api/gateway.py); answer the newly DOWN ids. The state a node had is kept, to come
        back to when it reports again."""
        now = datetime.now(UTC)
        silent_since = now - timedelta(seconds=self.settings.node_down_after_seconds)
        async with self.db.session() as session:
            nodes = list(
                await session.scalars(
                    select(Node).where(Node.removed_at.is_(None), Node.state != NodeState.DOWN.value)
                )
            )
        newly_down = []
        async with self.db.transaction() as session:
            for node in nodes:
                last = node.last_heartbeat_at or node.created_at
                if last >= silent_since:
                    continue
                # Conditional: an admin's change, a heartbeat or a concurrent check wins over this one.
                marked = await session.execute(
                    update(Node)
                    .where(
                        Node.id == node.id,
                        Node.state == node.state,
                        or_(Node.last_heartbeat_at.is_(None), Node.last_heartbeat_at < silent_since),
                        Node.removed_at.is_(None),
                    )
                    .values(state=NodeState.DOWN.value, state_before_down=node.state)
                )
                if marked.rowcount:  # type: ignore[attr-defined]
                    activity.logger.warning("node %s silent since %s: DOWN", node.name, last)
                    newly_down.append(node.id)
        return newly_down

    @activity.defn
    async def heal_node(self, node_id: str) -> list[str]:
        """Redeploy every ACTIVE deployment that had a replica on the DOWN node (as a rollback
        to itself would): its replicas land on the nodes left. The
        lost replicas are marked so. Answers the new deployments' ids."""
        async with self.db.session() as session:
            affected = [
                (service_id, environment_id)
                for _, service_id, environment_id in await session.execute(active_deployments_on(node_id))
            ]
        started = await self._redeploy(affected)
        # Last: a retry after a partial run finds the same replicas and redeploys (harmless:
        # the newer deploy supersedes the older one).
        async with self.db.transaction() as session:
            await session.execute(
                update(Replica)
                .where(Replica.node == node_id, Replica.state.in_(LIVE_REPLICA_STATES))
                .values(state="lost")
            )
        return started

    @activity.defn
    async def replace_missing_replicas(self) -> list[str]:
        """Redeploy every ACTIVE deployment one of whose replicas its node no longer has (its
        container removed behind Dockyard's back), as for a DOWN node: a full set of replicas replaces
        it, with no failed request. Enrolled nodes' heartbeats mark such replicas missing
        (api/gateway.py); the local agent, which sends none, is asked here. The missing replicas are
        marked lost. Answers the new deployments' ids."""
        await self._mark_local_missing()
        async with self.db.session() as session:
            missing = list(await session.execute(missing_replicas_of_active_deployments()))
        if not missing:
            return []
        for replica_id, service_id, _ in missing:
            activity.logger.warning(
                "replica %s of service %s is missing: replacing it", replica_id, service_id
            )
        started = await self._redeploy(sorted({(service, env) for _, service, env in missing}))
        async with self.db.transaction() as session:  # last, as in heal_node
            await session.execute(
                update(Replica)
                .where(
                    Replica.id.in_([replica_id for replica_id, _, _ in missing]),
                    Replica.state == ReplicaState.MISSING.value,
                )
                .values(state="lost")
            )
        return started

    async def _mark_local_missing(self) -> None:
        """The local agent's report stands for a heartbeat; an agent that does not answer changes nothing."""
        now = datetime.now(UTC)
        try:
            async with self._agents.agent_for(NodeRef()) as agent:
                reported = [status.replica_id for status in await agent.replicas()]
        except AgentCallError as exc:
            activity.logger.warning("missing replicas: local agent skipped: %s", exc)
            return
        async with self.db.transaction() as session:
            await session.execute(mark_missing(LOCAL_NODE, reported, now))

    async def _redeploy(self, services: list[tuple[str, str]]) -> list[str]:
        """Redeploy the ACTIVE deployment of each (service, environment); the new ids."""
        started = []
        for service_id, environment_id in services:
            async with self.db.session() as session:
                try:
                    deployment = await deployments.heal(
                        session, self.settings, self.temporal, ACTOR, service_id, environment_id
                    )
                except (Conflict, NotFound):  # nothing ACTIVE any more: a newer deploy took over
                    continue
                started.append(deployment.id)
        return started
