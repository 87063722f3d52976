"""Activities that watch the fleet: which nodes answer, which went DOWN, and the redeploys that bring
the replicas a DOWN node ran back on the others.

Liveness is probed by the control plane (a call over mutual TLS to each node's agent); a node that has
not answered for `node_down_after_seconds` is DOWN: it takes no new replicas, and every service that
had a replica there is released again, so the scheduler places its replicas on the nodes left."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities.agent_client import AgentCallError, AgentClient, AgentTLS
from core.contracts import DeploymentStatus, Heartbeat
from core.db import Database
from core.models import LIVE_REPLICA_STATES, Deployment, Node, Replica, RevokedCertificate
from core.scheduler import NodeState
from core.settings import Settings

PROBE_TIMEOUT_SECONDS = 2.0


class FleetActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    @activity.defn
    async def probe_nodes(self) -> list[str]:
        """Call every current node's agent; record who answered; mark DOWN the nodes silent for
        longer than the limit and READY again a DOWN node that answers. Answers the newly DOWN ids."""
        async with self.db.session() as session:
            nodes = list(await session.scalars(select(Node).where(Node.removed_at.is_(None))))
            revoked = [int(s, 16) for s in await session.scalars(select(RevokedCertificate.serial))]
        heartbeats = await asyncio.gather(*(self._heartbeat(node, revoked) for node in nodes))
        now = datetime.now(UTC)
        silent_since = now - timedelta(seconds=self.settings.node_down_after_seconds)
        newly_down = []
        async with self.db.transaction() as session:
            for node, heartbeat in zip(nodes, heartbeats, strict=True):
                if heartbeat is not None:
                    changes: dict[str, object] = {
                        "last_heartbeat_at": now,
                        "capacity": heartbeat.capacity.model_dump(),
                        "usage": heartbeat.usage.model_dump(),
                    }
                    if node.state == NodeState.DOWN.value:
                        changes["state"] = NodeState.READY.value
                        activity.logger.info("node %s answers again: READY", node.name)
                    await session.execute(update(Node).where(Node.id == node.id).values(**changes))
                    await _observe(session, node.id, heartbeat)
                    continue
                last = node.last_heartbeat_at or node.created_at
                if node.state != NodeState.DOWN.value and last < silent_since:
                    # Conditional: an admin's change or a concurrent probe wins over this one.
                    marked = await session.execute(
                        update(Node)
                        .where(Node.id == node.id, Node.state == node.state, Node.removed_at.is_(None))
                        .values(state=NodeState.DOWN.value)
                    )
                    if marked.rowcount:  # type: ignore[attr-defined]
                        activity.logger.warning("node %s silent since %s: DOWN", node.name, last)
                        newly_down.append(node.id)
        return newly_down

    async def _heartbeat(self, node: Node, revoked: list[int]) -> Heartbeat | None:
        """The node's heartbeat, or None when its agent does not answer in time."""
        tls = AgentTLS.from_pki_dir(self.settings.pki_dir, node.id, revoked)
        try:
            async with AgentClient.for_node(node.address, tls, timeout=PROBE_TIMEOUT_SECONDS) as agent:
                return await agent.heartbeat()
        except (AgentCallError, httpx.HTTPError, OSError):
            return None

    @activity.defn
    async def heal_node(self, node_id: str) -> list[str]:
        """Release again every ACTIVE deployment that had a replica on the DOWN node (through the
        control plane, as a rollback to itself would): its replicas land on the nodes left. The
        lost replicas are marked so. Answers the new deployments' ids."""
        async with self.db.session() as session:
            affected = list(
                await session.execute(
                    select(Deployment.service_id, Deployment.environment_id)
                    .join(Replica, Replica.deployment_id == Deployment.id)
                    .where(
                        Replica.node == node_id,
                        Replica.state.in_(LIVE_REPLICA_STATES),
                        Deployment.status == DeploymentStatus.ACTIVE.value,
                    )
                    .distinct()
                )
            )
        started = []
        async with httpx.AsyncClient(
            base_url=self.settings.public_api_url, headers=self._auth(), timeout=30
        ) as api:
            for service_id, environment_id in affected:
                response = await api.post(
                    f"/internal/services/{service_id}/heal", params={"environment_id": environment_id}
                )
                if response.status_code == 409:  # nothing ACTIVE any more: a newer deploy took over
                    continue
                response.raise_for_status()
                started.append(str(response.json()["id"]))
        # Last: a retry after a partial run finds the same replicas and releases again (harmless:
        # the newer release supersedes the older one).
        async with self.db.transaction() as session:
            await session.execute(
                update(Replica)
                .where(Replica.node == node_id, Replica.state.in_(LIVE_REPLICA_STATES))
                .values(state="lost")
            )
        return started

    def _auth(self) -> dict[str, str]:
        token = self.settings.api_token.get_secret_value() if self.settings.api_token else ""
        return {"Authorization": f"Bearer {token}"}


async def _observe(session: AsyncSession, node_id: str, heartbeat: Heartbeat) -> None:
    """The replicas' states as the node reports them (a container that exited shows as exited); rows
    the control plane already retired (removed, lost) stay retired."""
    for replica in heartbeat.replicas:
        await session.execute(
            update(Replica)
            .where(
                Replica.id == replica.replica_id,
                Replica.node == node_id,
                Replica.state != replica.state.value,
            )
            .values(state=replica.state.value)
        )
