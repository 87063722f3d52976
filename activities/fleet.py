"""Activities that watch the fleet: which nodes answer, which went DOWN, and the redeploys that bring
the replicas a DOWN node ran back on the others.

Agents send heartbeats to the agent gateway (api/gateway.py); a node with none for
`node_down_after_seconds` is DOWN: it takes no new replicas, and every service that had a replica there
is released again, so the scheduler places its replicas on the nodes left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import or_, select, update
from temporalio import activity

from core.db import Database
from core.fleet import active_deployments_on
from core.models import LIVE_REPLICA_STATES, Node, Replica
from core.scheduler import NodeState
from core.settings import Settings


class FleetActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

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
        """Release again every ACTIVE deployment that had a replica on the DOWN node (through the
        control plane, as a rollback to itself would): its replicas land on the nodes left. The
        lost replicas are marked so. Answers the new deployments' ids."""
        async with self.db.session() as session:
            affected = [
                (service_id, environment_id)
                for _, service_id, environment_id in await session.execute(active_deployments_on(node_id))
            ]
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
