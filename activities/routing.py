"""Routing activities: publish a service's servers for Traefik and wait until Traefik serves them."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import delete
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import RouteKey, RouteSpec
from core.db import Database
from core.models import Route
from core.naming import route_name
from core.routing import served_servers
from core.settings import Settings

POLL_INTERVAL_SECONDS = 0.05


class RoutingActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

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
            route.hostname = spec.hostname
            route.deployment_id = spec.deployment_id
            route.servers = sorted(spec.servers)

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


def _spec(route: Route) -> RouteSpec:
    return RouteSpec(
        service_id=route.service_id,
        environment_id=route.environment_id,
        hostname=route.hostname,
        deployment_id=route.deployment_id,
        servers=list(route.servers),
    )
