"""Routes (pure): Traefik's dynamic configuration rendered from the routes Dockyard publishes, and what
a route needs to follow the replicas that actually run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

WEB_ENTRYPOINT = "web"
WEBSECURE_ENTRYPOINT = "websecure"


@dataclass(frozen=True)
class RouteView:
    name: str
    hostname: str
    servers: tuple[str, ...]
    # The previous deployment's servers, while the route's deployment is in its stability window.
    fallback: tuple[str, ...] = ()


# A request whose server cannot be reached (a replica just gone, a node lost before the control plane
# noticed) is tried again on another server of the route, instead of failing; Traefik retries only
# when the server did not answer. The static configuration keeps the dial timeout short for this.
RETRY_MIDDLEWARE = "dockyard-retry"
MIDDLEWARES = {RETRY_MIDDLEWARE: {"retry": {"attempts": 3, "initialInterval": "50ms"}}}


# During a deploy's stability window the route is a failover service: the new replicas, and the previous
# deployment's (still running then) for when none of the new ones can answer. Traefik's passive health
# check sets aside a server as soon as a request to it fails (a refused connection, or a 5xx answer), for
# FAILURE_WINDOW; once every new server is set aside, the failover answers from the previous deployment.
# The request that found a server dead is retried (it never reached a replica), so the route's retry
# needs one attempt per new server, one for the fallback and one spare. A request already inside a replica
# when it died is not retried: it may have had effects.
FAILURE_WINDOW = "2s"
# Traefik lets a failover follow its main service only when that service has an active health check.
# A replica's HTTP health path may be custom and a TCP-only one has none, so this check never fires
# within a window (an hour at most); the passive check does the work.
DORMANT_HEALTH_CHECK = {"path": "/", "interval": "24h"}


def fallback_service(name: str) -> str:
    return f"fallback-{name}"


def failover_service(name: str) -> str:
    return f"failover-{name}"


def window_retry_middleware(name: str) -> str:
    return f"retry-{name}"


def render_traefik_config(routes: Iterable[RouteView]) -> dict[str, Any]:
    """One router per entrypoint (plain HTTP and TLS) and one load-balanced service per route; a route
    with fallback servers is served through a failover onto them.

    Routes without servers are left out: Traefik would answer 503 for them, and leaving the
    router away gives a clean 404 instead.
    """
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    middlewares: dict[str, Any] = dict(MIDDLEWARES)
    for route in sorted(routes, key=lambda r: r.name):
        if not route.servers:
            continue
        rule = f"Host(`{route.hostname}`)"
        service, middleware = route.name, RETRY_MIDDLEWARE
        services[route.name] = {"loadBalancer": _load_balancer(route.servers)}
        if route.fallback:
            service, middleware = failover_service(route.name), window_retry_middleware(route.name)
            services[route.name]["loadBalancer"] |= {
                "healthCheck": dict(DORMANT_HEALTH_CHECK),
                "passiveHealthCheck": {"maxFailedAttempts": 1, "failureWindow": FAILURE_WINDOW},
            }
            services[fallback_service(route.name)] = {"loadBalancer": _load_balancer(route.fallback)}
            services[service] = {
                "failover": {"service": route.name, "fallback": fallback_service(route.name)}
            }
            attempts = len(route.servers) + 2
            middlewares[middleware] = {"retry": {"attempts": attempts, "initialInterval": "50ms"}}
        routers[route.name] = {
            "rule": rule,
            "service": service,
            "entryPoints": [WEB_ENTRYPOINT],
            "middlewares": [middleware],
        }
        routers[f"{route.name}-tls"] = {
            "rule": rule,
            "service": service,
            "entryPoints": [WEBSECURE_ENTRYPOINT],
            "middlewares": [middleware],
            "tls": {},
        }
    if not routers:
        return {}
    return {"http": {"routers": routers, "services": services, "middlewares": middlewares}}


def _load_balancer(servers: Iterable[str]) -> dict[str, Any]:
    return {"servers": [{"url": f"http://{address}"} for address in sorted(servers)], "passHostHeader": True}


def served_servers(traefik_service: dict[str, Any]) -> set[str]:
    """Addresses of the servers Traefik's API reports UP for a service (`/api/http/services/{name}`)."""
    status = traefik_service.get("serverStatus") or {}
    servers = traefik_service.get("loadBalancer", {}).get("servers", [])
    urls = [server.get("url", "") for server in servers]
    return {url.removeprefix("http://") for url in urls if status.get(url, "UP") == "UP"}


@dataclass(frozen=True)
class ObservedReplica:
    """A replica of a route's deployment as its node reports it now."""

    replica_id: str
    node: str
    state: str  # a ReplicaState value
    address: str | None


@dataclass(frozen=True)
class RouteRepair:
    """What brings a route back in line with what runs: the servers to publish (None: keep them) and
    the stopped replicas to start."""

    servers: tuple[str, ...] | None
    start: tuple[ObservedReplica, ...]

    @property
    def needed(self) -> bool:
        return self.servers is not None or bool(self.start)


# Stopped, not failing: a container that is `created` or `exited` was stopped by someone (`dockyard
# down`, `docker stop`, a reboot's shutdown); Docker's restart policy brings back those that crashed.
_STOPPED = frozenset({"created", "exited"})


def repair_route(published: Iterable[str], observed: Iterable[ObservedReplica]) -> RouteRepair:
    """The servers of an ACTIVE deployment's route are the published addresses of its running replicas.

    Docker gives a container a new host port each time it starts, so after a restart of the replica, of
    its engine, of the node or of the whole platform, the route must follow. A route with no running
    replica keeps its servers: nothing better is known, and Traefik answers as it did."""
    replicas = list(observed)
    running = sorted({r.address for r in replicas if r.state == "running" and r.address})
    servers = tuple(running) if running and running != sorted(published) else None
    start = tuple(sorted((r for r in replicas if r.state in _STOPPED), key=lambda r: r.replica_id))
    return RouteRepair(servers=servers, start=start)
