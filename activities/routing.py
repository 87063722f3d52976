"""Routing activities: publish a service's servers for Traefik, wait until Traefik serves them, and keep
the routes of ACTIVE deployments on the addresses their replicas run at now."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime

import httpx
from sqlalchemy import delete, or_, select, update
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agents import AgentActivities
from activities.contracts import NodeRef, RouteKey, RouteSpec
from core.agent_client import AgentCallError
from core.contracts import Contract, DeploymentStatus
from core.db import Database
from core.models import Deployment, Node, Replica, Route
from core.naming import route_name
from core.routing import ObservedReplica, RouteRepair, repair_route, served_servers
from core.scheduler import NodeState
from core.settings import Settings

STARTS_AT_ONCE = 8  # stopped replicas started in parallel by one round
LOCAL_NODE = "local"  # Replica.node of the replicas of the local `dockyard up` agent

POLL_INTERVAL_SECONDS = 0.05


class RouteOwner(Contract):
    """The route of a service in an environment, as long as it points at this deployment."""

    service_id: str
    environment_id: str
    deployment_id: str


class RouteFallback(Contract):
    """The servers a deployment's route falls back on during its deploy's stability window: the
    previous deployment's replicas."""

    owner: RouteOwner
    servers: list[str]


class RoutingActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._agents = AgentActivities(settings, db)
        self._starting = asyncio.Semaphore(STARTS_AT_ONCE)

    @activity.defn
    async def get_route(self, key: RouteKey) -> RouteSpec | None:
        async with self.db.session() as session:
            route = await session.get(Route, (key.service_id, key.environment_id))
            return _spec(route) if route else None

    @activity.defn
    async def publish_route(self, spec: RouteSpec) -> None:
        """Point the service's hostname at these servers (idempotent upsert). The API renders the
        routes table as Traefik's dynamic configuration, which Traefik polls."""
        async with self.db.transaction() as session:
            route = await session.get(Route, (spec.service_id, spec.environment_id), with_for_update=True)
            if route is None:
                route = Route(service_id=spec.service_id, environment_id=spec.environment_id)
                session.add(route)
            elif route.deployment_id != spec.deployment_id:
                route.fallback_servers = []  # another deployment's window (or a rollback from it) ends
            route.hostname = spec.hostname
            route.deployment_id = spec.deployment_id
            route.servers = sorted(spec.servers)

    @activity.defn
    async def publish_route_fallback(self, fallback: RouteFallback) -> None:
        """Let the route of this deployment fall back on these servers (idempotent). A route that has
        moved on to another deployment meanwhile is left as it is."""
        await self._set_fallback(fallback.owner, sorted(fallback.servers))

    @activity.defn
    async def clear_route_fallback(self, owner: RouteOwner) -> None:
        """The route of this deployment serves from its own servers alone again (idempotent)."""
        await self._set_fallback(owner, [])

    async def _set_fallback(self, owner: RouteOwner, servers: list[str]) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(Route)
                .where(
                    Route.service_id == owner.service_id,
                    Route.environment_id == owner.environment_id,
                    Route.deployment_id == owner.deployment_id,
                )
                .values(fallback_servers=servers)
            )

    @activity.defn
    async def unpublish_route(self, key: RouteKey) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                delete(Route).where(
                    Route.service_id == key.service_id, Route.environment_id == key.environment_id
                )
            )

    @activity.defn
    async def wait_route_live(self, spec: RouteSpec) -> None:
        """Return once Traefik's own API reports exactly these servers, all UP, for the route."""
        name = route_name(spec.service_id, spec.environment_id)
        url = f"{self.settings.traefik_api_url}/api/http/services/{name}@http"
        wanted = set(spec.servers)
        deadline = asyncio.get_running_loop().time() + self.settings.routing_timeout_seconds
        seen: set[str] = set()
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                activity.heartbeat()
                try:
                    response = await http.get(url)
                    if response.status_code == 200:
                        seen = served_servers(response.json())
                        if seen == wanted:
                            return
                except httpx.TransportError as exc:
                    activity.logger.warning("traefik api unreachable at %s: %r", url, exc)
                if asyncio.get_running_loop().time() > deadline:
                    raise ApplicationError(
                        f"traefik did not serve {spec.hostname} from {sorted(wanted)} within "
                        f"{self.settings.routing_timeout_seconds:g}s (it serves {sorted(seen) or 'nothing'})",
                        type="RoutingTimeout",
                        non_retryable=True,
                    )
                await asyncio.sleep(POLL_INTERVAL_SECONDS)

    @activity.defn
    async def follow_replicas(self) -> list[str]:
        """Bring the route of every ACTIVE deployment in line with its replicas as they run now: start the
        replicas found stopped, and publish the addresses they are running at when these changed (Docker
        publishes a restarted container on a new port). Enrolled nodes report their replicas in their
        heartbeats (api/gateway.py keeps state and address); the local agent is asked. Answers what it
        did, one line each."""
        routes, observed, nodes = await self._routes_and_replicas()
        if any(replica.node == LOCAL_NODE for replicas in observed.values() for replica in replicas):
            observed = await self._with_local_reports(observed)
        stopped = [
            replica
            for route, _ in routes
            for replica in repair_route(route.servers, observed.get(route.deployment_id, [])).start
        ]
        done: list[str] = []
        if stopped:
            # All at once (a platform that comes back has them all stopped), and what they run at now is
            # routed in this same round.
            started = await asyncio.gather(*(self._start(replica, nodes) for replica in stopped))
            now = {replica.replica_id: replica for replica in started if replica is not None}
            observed = {
                deployment_id: [now.get(replica.replica_id, replica) for replica in replicas]
                for deployment_id, replicas in observed.items()
            }
            done += [f"started {replica.replica_id} on {replica.node}" for replica in now.values()]
        for route, updated_at in routes:
            repair = repair_route(route.servers, observed.get(route.deployment_id, []))
            if repair.servers is not None and await self._republish(route, updated_at, repair):
                done.append(f"{route.hostname}: servers {sorted(route.servers)} -> {list(repair.servers)}")
        for line in done:
            activity.logger.info("follow replicas: %s", line)
        return done

    async def _routes_and_replicas(
        self,
    ) -> tuple[list[tuple[Route, datetime]], dict[str, list[ObservedReplica]], dict[str, NodeRef]]:
        """The routes of ACTIVE deployments (with the version they were read at), the live replicas of
        those deployments as last recorded, by deployment, and the agents of the nodes they are on.
        Replicas on DOWN or removed nodes are left out: the fleet watch redeploys them elsewhere."""
        async with self.db.session() as session:
            routes = [
                (route, route.updated_at)
                for route in await session.scalars(
                    select(Route)
                    .join(Deployment, Deployment.id == Route.deployment_id)
                    .where(Deployment.status == DeploymentStatus.ACTIVE.value)
                )
            ]
            if not routes:
                return [], {}, {}
            unusable = select(Node.id).where(
                or_(Node.removed_at.is_not(None), Node.state == NodeState.DOWN.value)
            )
            replicas = await session.scalars(
                select(Replica).where(
                    Replica.deployment_id.in_({route.deployment_id for route, _ in routes}),
                    Replica.state.not_in(("removed", "lost")),
                    Replica.node.not_in(unusable),
                )
            )
            observed: dict[str, list[ObservedReplica]] = defaultdict(list)
            for replica in replicas:
                observed[replica.deployment_id].append(
                    ObservedReplica(replica.id, replica.node, replica.state, replica.address)
                )
            node_ids = {r.node for rs in observed.values() for r in rs} - {LOCAL_NODE}
            nodes = {LOCAL_NODE: NodeRef()}
            for node in await session.scalars(select(Node).where(Node.id.in_(node_ids))):
                nodes[node.id] = NodeRef(node_id=node.id, address=node.address)
        return routes, observed, nodes

    async def _with_local_reports(
        self, observed: dict[str, list[ObservedReplica]]
    ) -> dict[str, list[ObservedReplica]]:
        """The local agent sends no heartbeats: its replicas as it reports them now. One it does not
        report is left out; an agent that does not answer changes nothing."""
        try:
            async with self._agents.agent_for(NodeRef()) as agent:
                reported = {status.replica_id: status for status in await agent.replicas()}
        except AgentCallError as exc:
            activity.logger.warning("follow replicas: local agent skipped: %s", exc)
            return observed
        followed: dict[str, list[ObservedReplica]] = {}
        for deployment_id, replicas in observed.items():
            followed[deployment_id] = []
            for replica in replicas:
                if replica.node != LOCAL_NODE:
                    followed[deployment_id].append(replica)
                elif (status := reported.get(replica.replica_id)) is not None:
                    followed[deployment_id].append(
                        ObservedReplica(replica.replica_id, LOCAL_NODE, status.state.value, status.address)
                    )
        return followed

    async def _start(self, replica: ObservedReplica, nodes: dict[str, NodeRef]) -> ObservedReplica | None:
        """Start a stopped replica; answer it as it runs now, or None when it could not be started (the
        next round tries again)."""
        node = nodes.get(replica.node)
        if node is None:
            return None
        async with self._starting:
            try:
                async with self._agents.agent_for(node) as agent:
                    status = await agent.start_replica(replica.replica_id)
            except AgentCallError as exc:
                activity.logger.warning("follow replicas: %s not started: %s", replica.replica_id, exc)
                return None
        return ObservedReplica(replica.replica_id, replica.node, status.state.value, status.address)

    async def _republish(self, route: Route, read_at: datetime, repair: RouteRepair) -> bool:
        """Conditional on the route being as it was read: a deploy that moved it meanwhile wins."""
        async with self.db.transaction() as session:
            changed = await session.execute(
                update(Route)
                .where(
                    Route.service_id == route.service_id,
                    Route.environment_id == route.environment_id,
                    Route.deployment_id == route.deployment_id,
                    Route.updated_at == read_at,
                )
                .values(servers=list(repair.servers or ()))
            )
        return bool(changed.rowcount)  # type: ignore[attr-defined]


def _spec(route: Route) -> RouteSpec:
    return RouteSpec(
        service_id=route.service_id,
        environment_id=route.environment_id,
        hostname=route.hostname,
        deployment_id=route.deployment_id,
        servers=list(route.servers),
    )
