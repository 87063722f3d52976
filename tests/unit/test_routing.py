"""Traefik's dynamic configuration is data: the exact document per set of routes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.routing import RouteView, render_traefik_config, served_servers

WEB = RouteView(name="svc-a-env-p", hostname="web-production.apps.test", servers=("127.0.0.1:32001",))
API = RouteView(
    name="svc-b-env-p",
    hostname="api-production.apps.test",
    servers=("127.0.0.2:32010", "127.0.0.1:32011"),
)
EMPTY = RouteView(name="svc-c-env-p", hostname="worker-production.apps.test", servers=())


RETRY = ["dockyard-retry"]
MIDDLEWARES = {"dockyard-retry": {"retry": {"attempts": 3, "initialInterval": "50ms"}}}


def routers(route: RouteView) -> dict[str, Any]:
    rule = f"Host(`{route.hostname}`)"
    return {
        route.name: {"rule": rule, "service": route.name, "entryPoints": ["web"], "middlewares": RETRY},
        f"{route.name}-tls": {
            "rule": rule,
            "service": route.name,
            "entryPoints": ["websecure"],
            "middlewares": RETRY,
            "tls": {},
        },
    }


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        pytest.param([], {}, id="no-routes"),
        pytest.param([EMPTY], {}, id="only-routes-without-servers"),
        pytest.param(
            [WEB],
            {
                "http": {
                    "routers": {
                        "svc-a-env-p": {
                            "rule": "Host(`web-production.apps.test`)",
                            "service": "svc-a-env-p",
                            "entryPoints": ["web"],
                            "middlewares": ["dockyard-retry"],
                        },
                        "svc-a-env-p-tls": {
                            "rule": "Host(`web-production.apps.test`)",
                            "service": "svc-a-env-p",
                            "entryPoints": ["websecure"],
                            "middlewares": ["dockyard-retry"],
                            "tls": {},
                        },
                    },
                    "services": {
                        "svc-a-env-p": {
                            "loadBalancer": {
                                "servers": [{"url": "http://127.0.0.1:32001"}],
                                "passHostHeader": True,
                            }
                        }
                    },
                    "middlewares": MIDDLEWARES,
                }
            },
            id="one-route",
        ),
        pytest.param(
            [API, EMPTY, WEB],
            {
                "http": {
                    "routers": routers(WEB) | routers(API),
                    "services": {
                        "svc-a-env-p": {
                            "loadBalancer": {
                                "servers": [{"url": "http://127.0.0.1:32001"}],
                                "passHostHeader": True,
                            }
                        },
                        "svc-b-env-p": {
                            "loadBalancer": {
                                "servers": [
                                    {"url": "http://127.0.0.1:32011"},
                                    {"url": "http://127.0.0.2:32010"},
                                ],
                                "passHostHeader": True,
                            }
                        },
                    },
                    "middlewares": MIDDLEWARES,
                }
            },
            id="two-routes-and-one-without-servers",
        ),
    ],
)
def test_render(routes: list[RouteView], expected: dict[str, Any]) -> None:
    assert render_traefik_config(routes) == expected


RELEASING = RouteView(
    name="svc-d-env-p",
    hostname="shop-production.apps.test",
    servers=("127.0.0.1:32102", "127.0.0.1:32101"),
    fallback=("127.0.0.1:32002", "127.0.0.1:32001"),
)


def test_render_a_route_in_its_stability_window_fails_over_to_the_previous_servers() -> None:
    assert render_traefik_config([RELEASING]) == {
        "http": {
            "routers": {
                "svc-d-env-p": {
                    "rule": "Host(`shop-production.apps.test`)",
                    "service": "failover-svc-d-env-p",
                    "entryPoints": ["web"],
                    "middlewares": ["retry-svc-d-env-p"],
                },
                "svc-d-env-p-tls": {
                    "rule": "Host(`shop-production.apps.test`)",
                    "service": "failover-svc-d-env-p",
                    "entryPoints": ["websecure"],
                    "middlewares": ["retry-svc-d-env-p"],
                    "tls": {},
                },
            },
            "services": {
                "svc-d-env-p": {
                    "loadBalancer": {
                        "servers": [{"url": "http://127.0.0.1:32101"}, {"url": "http://127.0.0.1:32102"}],
                        "passHostHeader": True,
                        "healthCheck": {"path": "/", "interval": "24h"},
                        "passiveHealthCheck": {"maxFailedAttempts": 1, "failureWindow": "2s"},
                    }
                },
                "fallback-svc-d-env-p": {
                    "loadBalancer": {
                        "servers": [{"url": "http://127.0.0.1:32001"}, {"url": "http://127.0.0.1:32002"}],
                        "passHostHeader": True,
                    }
                },
                "failover-svc-d-env-p": {
                    "failover": {"service": "svc-d-env-p", "fallback": "fallback-svc-d-env-p"}
                },
            },
            "middlewares": MIDDLEWARES
            | {"retry-svc-d-env-p": {"retry": {"attempts": 4, "initialInterval": "50ms"}}},
        }
    }


def test_render_a_window_leaves_the_other_routes_as_they_are() -> None:
    config = render_traefik_config([WEB, RELEASING])["http"]
    alone = render_traefik_config([WEB])["http"]
    assert {name: config["routers"][name] for name in alone["routers"]} == alone["routers"]
    assert config["services"]["svc-a-env-p"] == alone["services"]["svc-a-env-p"]
    assert config["middlewares"]["dockyard-retry"] == MIDDLEWARES["dockyard-retry"]


def test_render_a_window_with_no_new_server_left_serves_nothing() -> None:
    """A route is served from its own servers; the fallback only backs them up."""
    assert render_traefik_config([RouteView("svc-d-env-p", "shop.apps.test", (), ("127.0.0.1:32001",))]) == {}


def test_render_orders_routers_services_and_servers() -> None:
    config = render_traefik_config([API, WEB])
    assert list(config["http"]["routers"]) == [
        "svc-a-env-p",
        "svc-a-env-p-tls",
        "svc-b-env-p",
        "svc-b-env-p-tls",
    ]
    assert list(config["http"]["services"]) == ["svc-a-env-p", "svc-b-env-p"]
    assert config["http"]["services"]["svc-b-env-p"]["loadBalancer"]["servers"] == [
        {"url": "http://127.0.0.1:32011"},
        {"url": "http://127.0.0.2:32010"},
    ]


def test_render_accepts_any_iterable() -> None:
    assert render_traefik_config(iter([WEB])) == render_traefik_config([WEB])


_address = st.builds("127.0.0.{}:{}".format, st.integers(1, 254), st.integers(1024, 65535))
_route = st.builds(
    RouteView,
    name=st.from_regex(r"\Asvc-[a-f0-9]{4}-env-[a-f0-9]{4}\Z"),
    hostname=st.from_regex(r"\A[a-z]{1,10}-production\.apps\.test\Z"),
    servers=st.lists(_address, max_size=4, unique=True).map(tuple),
)
_routes = st.lists(_route, max_size=6, unique_by=lambda r: r.name)
_releasing = st.builds(
    RouteView,
    name=st.from_regex(r"\Asvc-[a-f0-9]{4}-env-[a-f0-9]{4}\Z"),
    hostname=st.from_regex(r"\A[a-z]{1,10}-production\.apps\.test\Z"),
    servers=st.lists(_address, min_size=1, max_size=6, unique=True).map(tuple),
    fallback=st.lists(_address, min_size=1, max_size=4, unique=True).map(tuple),
)


@given(_releasing)
def test_a_window_keeps_the_new_servers_where_traefik_reports_them_and_retries_past_all_of_them(
    route: RouteView,
) -> None:
    """wait_route_live and the tests read the route's servers from Traefik's service of the route's own
    name; a request that finds every new server dead reaches the fallback within its attempts."""
    http = render_traefik_config([route])["http"]
    servers = http["services"][route.name]["loadBalancer"]["servers"]
    assert [s["url"] for s in servers] == [f"http://{a}" for a in sorted(route.servers)]
    failover = http["services"][http["routers"][route.name]["service"]]["failover"]
    assert failover["service"] == route.name
    fallback = http["services"][failover["fallback"]]["loadBalancer"]["servers"]
    assert [s["url"] for s in fallback] == [f"http://{a}" for a in sorted(route.fallback)]
    [retry] = http["routers"][route.name]["middlewares"]
    assert http["middlewares"][retry]["retry"]["attempts"] > len(route.servers) + 1


@given(_routes, st.randoms())
def test_render_is_independent_of_input_order(routes: list[RouteView], random: Any) -> None:
    shuffled = list(routes)
    random.shuffle(shuffled)
    assert render_traefik_config(shuffled) == render_traefik_config(routes)


@given(_routes)
def test_every_route_with_servers_is_served_on_both_entrypoints(routes: list[RouteView]) -> None:
    config = render_traefik_config(routes)
    served = [r for r in routes if r.servers]
    if not served:
        assert config == {}
        return
    http = config["http"]
    assert set(http["services"]) == {r.name for r in served}
    assert set(http["routers"]) == {r.name for r in served} | {f"{r.name}-tls" for r in served}
    for route in served:
        servers = http["services"][route.name]["loadBalancer"]["servers"]
        assert [s["url"] for s in servers] == [f"http://{a}" for a in sorted(route.servers)]
        for name in (route.name, f"{route.name}-tls"):
            assert http["routers"][name]["service"] == route.name
            assert http["routers"][name]["rule"] == f"Host(`{route.hostname}`)"


def traefik_service(status: dict[str, str] | None, *urls: str) -> dict[str, Any]:
    """The shape of Traefik's `/api/http/services/{name}` answer."""
    service: dict[str, Any] = {
        "loadBalancer": {"servers": [{"url": url} for url in urls], "passHostHeader": True},
        "status": "enabled",
        "name": "svc-a-env-p@http",
    }
    if status is not None:
        service["serverStatus"] = status
    return service


A = "http://127.0.0.1:32001"
B = "http://127.0.0.1:32002"


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        pytest.param({}, set(), id="empty-answer"),
        pytest.param(traefik_service(None), set(), id="no-servers"),
        pytest.param(traefik_service(None, A, B), {"127.0.0.1:32001", "127.0.0.1:32002"}, id="no-status-yet"),
        pytest.param(
            traefik_service({A: "UP", B: "UP"}, A, B), {"127.0.0.1:32001", "127.0.0.1:32002"}, id="all-up"
        ),
        pytest.param(traefik_service({A: "UP", B: "DOWN"}, A, B), {"127.0.0.1:32001"}, id="one-down"),
        pytest.param(traefik_service({A: "DOWN", B: "DOWN"}, A, B), set(), id="all-down"),
        pytest.param(traefik_service({A: "DOWN"}, A, B), {"127.0.0.1:32002"}, id="status-for-some"),
        pytest.param(
            {"loadBalancer": {"servers": [{"url": A}]}, "serverStatus": None},
            {"127.0.0.1:32001"},
            id="null-status",
        ),
    ],
)
def test_served_servers(service: dict[str, Any], expected: set[str]) -> None:
    assert served_servers(service) == expected
