"""A crash is not an outage: every process `dockyard up` started is SIGKILLed in turn (by the PID its
supervisor recorded) while a request loop hits an ACTIVE service through Traefik. Each comes back with a
new PID and answers, `dockyard up` keeps running, and the service never fails a request. Temporal comes
back on its own state: a deploy in flight when it died finishes ACTIVE, and so does the next one.
Traefik runs as an active + standby pair: killing the active one loses only the request it was serving."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import httpx
import pytest
import requests

from cli.baseimage import ensure_busybox_base
from cli.platform import render_traefik_config
from cli.sockets import Listen
from cli.supervisor import ProcessSpec, Supervisor
from core.settings import load_settings
from core.temporal import connect
from tests.support import missing_component
from tests.support.components import wait_until
from tests.support.nodes import Fleet, NodeEngine, dockerd_command
from tests.support.platform import AppImages, Platform, platform_with
from tests.support.process import free_port
from tests.support.traffic import STALL_SECONDS, RequestLoop, hostname

pytestmark = pytest.mark.timeout(600)

TRAEFIK = str(Path(sys.executable).parent / "traefik")
SUPERVISED = ("temporal", "registry", "redis", "api", "prometheus", "traefik", "agent", "worker")


@pytest.fixture(scope="module")
def supervised(docker_client: docker.DockerClient, workdir: Path) -> Iterator[Platform]:
    """A platform of its own: killing its processes must not disturb the session's."""
    with platform_with(docker_client, workdir / "supervision", {}) as platform:
        yield platform


@pytest.fixture(scope="module")
def service(supervised: Platform, docker_client: docker.DockerClient) -> dict:
    image = AppImages(docker_client, supervised).push("e2e/steady", "v1", "steady v1")
    service = supervised.create_service("e2e-supervision", "steady", image, replicas=2)
    deployment = supervised.wait_final(supervised.deploy(service["id"])["id"])
    assert deployment["status"] == "ACTIVE", f"{deployment['failed_step']}: {deployment['message']}"
    return service


def pid_of(platform: Platform, name: str) -> int:
    return int((platform.state_dir / "run" / f"{name}.pid").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def tcp_answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host.split("//")[-1], int(port)), timeout=1):
            return True
    except OSError:
        return False


def http_answers(url: str, *, ok: tuple[int, ...] = (200,)) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in ok
    except httpx.HTTPError:
        return False


def answers(platform: Platform) -> dict[str, Callable[[], bool]]:
    """How to tell, from outside, that each process serves again (the worker has no port: the deploys
    below show it works)."""
    env = platform.env
    api = f"http://127.0.0.1:{env['DOCKYARD_API_PORT']}"
    return {
        "temporal": lambda: (
            tcp_answers(env["DOCKYARD_TEMPORAL_ADDRESS"]) and http_answers(env["DOCKYARD_TEMPORAL_UI_URL"])
        ),
        "registry": lambda: http_answers(f"http://{env['DOCKYARD_REGISTRY_HOST']}/v2/", ok=(401,)),
        "redis": lambda: tcp_answers(env["DOCKYARD_REDIS_URL"].removesuffix("/0")),
        "api": lambda: http_answers(f"{api}/healthz"),
        "traefik": lambda: http_answers(f"{env['DOCKYARD_TRAEFIK_API_URL']}/ping"),
        "prometheus": lambda: http_answers(f"{env['DOCKYARD_PROMETHEUS_URL']}/-/ready"),
        "agent": lambda: http_answers(f"{env['DOCKYARD_AGENT_URL']}/healthz"),
        "worker": lambda: True,
    }


def up_log(platform: Platform) -> str:
    return (platform.state_dir / "logs" / "up.log").read_text(errors="replace")


def kill_and_wait_back(platform: Platform, name: str, answer: Callable[[], bool]) -> tuple[int, int, float]:
    """SIGKILL the process `name`; return its old PID, its new one, and the seconds until it answered."""
    old = pid_of(platform, name)
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: not alive(old) or pid_of(platform, name) != old, 10, f"{name} to die")
    wait_until(lambda: pid_of(platform, name) != old, 30, f"{name} to be started again")
    new = pid_of(platform, name)
    wait_until(lambda: f"{name} (pid {new}) is ready again" in up_log(platform), 60, f"{name} ready again")
    wait_until(answer, 30, f"{name} answering")
    return old, new, time.monotonic() - killed_at


def kill_active_traefik(platform: Platform) -> tuple[int, int, float, float]:
    """SIGKILL the Traefik that takes new connections; return its PID, the PID of the standby that took
    over, the instant it was dead (perf_counter, RequestLoop's clock) and the seconds until the killed
    one was back, ready, as the new standby."""
    old = pid_of(platform, "traefik")
    instance = next(
        path.stem
        for path in (platform.state_dir / "run").glob("traefik.*.pid")
        if path.read_text().strip() == str(old)
    )
    pidfd = os.pidfd_open(old)
    try:
        os.kill(old, signal.SIGKILL)
        select.select([pidfd], [], [], 10)  # readable once the process has exited: its sockets are closed
        died_at = time.perf_counter()
    finally:
        os.close(pidfd)
    wait_until(lambda: pid_of(platform, "traefik") != old, 10, "the standby to take new connections")
    new = pid_of(platform, "traefik")
    wait_until(lambda: pid_of(platform, instance) != old, 30, "the killed Traefik to be started again")
    again = pid_of(platform, instance)
    wait_until(lambda: f"{instance} (pid {again}) is ready again" in up_log(platform), 60, "the new standby")
    return old, new, died_at, time.perf_counter() - died_at


def assert_only_the_request_in_flight_failed(loop: RequestLoop, died_at: float) -> None:
    """Nothing can save the request the killed Traefik was serving; every other one is answered, by a
    Traefik that had its routes (no 404), without a stall."""
    after = [
        f"{sent - died_at:+.3f}s {why}"
        for why, sent in zip(loop.failures, loop.failed_sent_at, strict=True)
        if sent >= died_at
    ]
    assert after == [], (
        f"{len(after)} requests sent after Traefik died failed (sent at): {after[:3]} ... {after[-3:]}"
    )
    assert len(loop.failures) <= 1, loop.failures[:5]
    assert not any(why.startswith("HTTP 404") for why in loop.failures), loop.failures
    assert longest_gap(loop) < STALL_SECONDS


def test_each_process_killed_in_turn_comes_back_and_the_service_never_fails_a_request(
    supervised: Platform, service: dict
) -> None:
    up_pid = int((supervised.state_dir / "dockyard.pid").read_text())
    run_dir = supervised.state_dir / "run"
    if (run_dir / "dockerd.pid").exists():
        names: tuple[str, ...] = ("dockerd", *SUPERVISED)
    else:
        names = SUPERVISED
        print("\ndockerd: skipped: the platform uses this machine's Docker Engine, which it did not start")
    probes = answers(supervised) | {"dockerd": lambda: Path("/var/run/docker.sock").exists()}
    for name in names:
        with RequestLoop(supervised.edge_url, hostname(service)) as during:
            time.sleep(1)
            if name == "traefik":
                old, new, died_at, back_after = kill_active_traefik(supervised)
            else:
                old, new, back_after = kill_and_wait_back(supervised, name, probes[name])
        with RequestLoop(supervised.edge_url, hostname(service)) as after:
            time.sleep(2)
        print(f"{name:9} pid {old} → {new}, answering again after {back_after:.1f}s; {during.summary()}")
        assert alive(up_pid), f"dockyard up stopped after {name} was killed:\n{up_log(supervised)[-3000:]}"
        assert new != old and alive(new)
        assert re.search(rf"{name}(\.[ab])? \(pid {old}\) died: signal 9 \(SIGKILL\)", up_log(supervised))
        assert after.failures == [], f"requests failed after {name} came back: {after.failures[:5]}"
        if name == "traefik":
            # Traefik is the data path itself: the request in flight inside the killed process is lost;
            # its standby, routes loaded, takes the next connections at once.
            print(f"          longest time without an answer: {longest_gap(during) * 1000:.0f} ms")
            assert_only_the_request_in_flight_failed(during, died_at)
        else:
            # A failure includes an answer slower than STALL_SECONDS.
            assert during.failures == [], f"requests failed while {name} was down: {during.failures[:5]}"
        assert during.answers.keys() == after.answers.keys() == {"steady v1"}


def longest_gap(loop: RequestLoop) -> float:
    """The longest time without a good answer (between two answers in a row)."""
    times = [at for at, _ in loop.timeline]
    return max((later - earlier for earlier, later in itertools.pairwise(times)), default=0.0)


def test_temporal_killed_mid_deploy_comes_back_on_its_state_and_the_deploy_finishes(
    supervised: Platform, service: dict, docker_client: docker.DockerClient
) -> None:
    images = AppImages(docker_client, supervised)
    v2 = images.push("e2e/steady", "v2", "steady v2", start_delay=4)
    before = supervised.api.get(f"/v1/services/{service['id']}/deployments").json()
    with RequestLoop(supervised.edge_url, hostname(service)) as loop:
        deployment = supervised.deploy(service["id"], image=v2)
        wait_until(
            lambda: docker_client.containers.list(
                filters={"label": f"dockyard.deployment={deployment['id']}"}
            ),
            60,
            "the new replicas to start",
        )
        killed_at = time.monotonic()
        kill_and_wait_back(supervised, "temporal", answers(supervised)["temporal"])
        final = supervised.wait_final(deployment["id"], timeout=180)
        finished_after = time.monotonic() - killed_at
        assert final["status"] == "ACTIVE", final
        loop.first("steady v2")
    assert loop.failures == [], loop.failures[:5]  # a stall over STALL_SECONDS included
    print(f"\nTemporal killed mid-deploy: ACTIVE {finished_after:.1f}s after the kill; {loop.summary()}")

    # Temporal came back on its own database: the workflows of the earlier deploys are still there.
    async def described() -> list[str]:
        settings = load_settings(temporal_address=supervised.env["DOCKYARD_TEMPORAL_ADDRESS"])
        client = await connect(settings)
        return [
            (await client.get_workflow_handle(d["workflow_id"]).describe()).id
            for d in before
            if d["workflow_id"]
        ]

    assert asyncio.run(described()) == [d["workflow_id"] for d in before if d["workflow_id"]] != []

    v3 = images.push("e2e/steady", "v3", "steady v3")
    started = time.monotonic()
    after = supervised.wait_final(supervised.deploy(service["id"], image=v3)["id"])
    assert after["status"] == "ACTIVE", after
    assert supervised.get(service).text.strip() == "steady v3"
    print(f"the next deploy after the Temporal kill: ACTIVE in {time.monotonic() - started:.1f}s")


def containers_of(client: docker.DockerClient, **labels: str) -> set[str]:
    """Names from one list call (sparse: no inspect of each, which a container removed meanwhile fails)."""
    filters = {"label": [f"dockyard.{key}={value}" for key, value in labels.items()]}
    return {
        c.attrs["Names"][0].lstrip("/")
        for c in client.containers.list(all=True, sparse=True, filters=filters)
    }


# Temporal has its own test above.
@pytest.mark.parametrize("name", [name for name in SUPERVISED if name != "temporal"])
def test_a_deploy_under_way_when_a_process_is_killed_ends_with_no_failed_request_and_no_orphan(
    supervised: Platform, service: dict, docker_client: docker.DockerClient, name: str
) -> None:
    serving = supervised.get(service).text.strip()
    image = AppImages(docker_client, supervised).push("e2e/steady", name, f"steady {name}", start_delay=2)
    with RequestLoop(supervised.edge_url, hostname(service)) as loop:
        deployment = supervised.deploy(service["id"], image=image)
        new_replicas = {"label": f"dockyard.deployment={deployment['id']}"}
        wait_until(
            lambda: docker_client.containers.list(filters=new_replicas), 60, "the new replicas to start"
        )
        if name == "traefik":
            _, _, died_at, _ = kill_active_traefik(supervised)
        else:
            kill_and_wait_back(supervised, name, answers(supervised)[name])
        final = supervised.wait_final(deployment["id"], timeout=240)
        time.sleep(1)
    outcome = final["status"] + (
        f" at {final['failed_step']}: {final['message']}" if final["failed_step"] else ""
    )
    print(f"\n{name} killed mid-deploy: {outcome}; {loop.summary()}")
    assert final["status"] in ("ACTIVE", "FAILED"), final
    if final["status"] == "FAILED":
        assert final["failed_step"] and final["message"], final
    routed_to = routes_in_traefik(supervised)
    if name == "traefik":
        print(f"longest time without an answer: {longest_gap(loop) * 1000:.0f} ms")
        assert_only_the_request_in_flight_failed(loop, died_at)
    else:
        # A failure includes a stall over STALL_SECONDS.
        assert loop.failures == [], f"{loop.failures[:3]}; deploy {outcome}; Traefik routes to {routed_to}"
    assert set(loop.answers) <= {serving, f"steady {name}"}

    active = [d for d in deployments_of(supervised, service) if d["status"] == "ACTIVE"]
    assert len(active) == 1
    wait_until(
        lambda: (
            containers_of(docker_client, service=service["id"])
            == containers_of(docker_client, deployment=active[0]["id"])
        ),
        60,
        "only the ACTIVE deployment's replicas (no orphan)",
    )


def routes_in_traefik(platform: Platform) -> dict[str, list[str]]:
    """Traefik's servers per service, as its own API reports them (for failure messages)."""
    services = httpx.get(f"{platform.env['DOCKYARD_TRAEFIK_API_URL']}/api/http/services", timeout=5).json()
    return {
        service["name"]: [server["url"] for server in service.get("loadBalancer", {}).get("servers", [])]
        for service in services
        if service["name"].endswith("@http")
    }


def deployments_of(platform: Platform, service: dict) -> list[dict]:
    return platform.api.get(f"/v1/services/{service['id']}/deployments").json()  # type: ignore[no-any-return]


class ConfigServer:
    """Stands in for the API's /internal/traefik/config: answers `config`, or 500, or is gone."""

    def __init__(self, port: int) -> None:
        import http.server
        import json
        import threading

        self.answer: dict | int = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if isinstance(server.answer, int):
                    self.send_error(server.answer)
                    return
                body = json.dumps(server.answer).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def route(host: str, backend_port: int) -> dict:
    return {
        "http": {
            "routers": {"app": {"rule": f"Host(`{host}`)", "service": "app", "entryPoints": ["web"]}},
            "services": {"app": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{backend_port}"}]}}},
        }
    }


def routed(port: int, host: str) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": host}, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_traefik_keeps_its_last_configuration_while_the_api_fails_or_is_gone(tmp_path: Path) -> None:
    """Traefik alone, started as `dockyard up` starts it, with its HTTP provider polling a stand-in."""
    config_port, backend_port, web, websecure, api = (free_port() for _ in range(5))
    backend = ConfigServer(backend_port)  # any 200 answer will do as the app
    backend.answer = {"app": "up"}
    config = ConfigServer(config_port)
    config.answer = route("app.test", backend_port)
    settings = load_settings(
        state_dir=tmp_path,
        api_token="token",
        public_api_url=f"http://127.0.0.1:{config_port}",
        edge_http_url=f"http://127.0.0.1:{web}",
        edge_https_url=f"https://127.0.0.1:{websecure}",
        traefik_api_url=f"http://127.0.0.1:{api}",
    )
    supervisor = Supervisor(tmp_path / "logs", tmp_path)
    try:
        supervisor.start(
            ProcessSpec(
                "traefik",
                [TRAEFIK, f"--configFile={render_traefik_config(settings, tmp_path)}"],
                ready_url=f"http://127.0.0.1:{api}/ping",
                sockets=(Listen("web", "127.0.0.1", web), Listen("websecure", "127.0.0.1", websecure)),
            )
        )
        wait_until(lambda: routed(web, "app.test"), 10, "the route")
        for outage in ("500", "503", "gone"):
            if outage == "gone":
                config.close()
            else:
                config.answer = int(outage)
            with RequestLoop(f"http://127.0.0.1:{web}", "app.test", max_seconds=5) as loop:
                time.sleep(3)  # 30 polls at 100 ms
            assert loop.failures == [] and loop.total > 50, f"{outage}: {loop.summary()}"
        config = ConfigServer(config_port)  # the API is back, with a route moved elsewhere
        config.answer = route("moved.test", backend_port)
        wait_until(lambda: routed(web, "moved.test"), 60, "the new route")
    finally:
        supervisor.stop_all()
        config.close()
        backend.close()


def test_a_docker_engine_the_supervisor_runs_restarts_its_replicas_and_is_started_again(
    tmp_path: Path,
) -> None:
    """`dockyard up` starts dockerd when none runs; here one on a simulated node's roots and bridge, so
    the machine's engine is never touched. Started by the supervisor on an engine's data (as after a
    reboot), it restarts a replica by its restart policy (unless-stopped, as the agent sets it); SIGKILLed,
    it is started again and answers."""
    if reason := NodeEngine.available():
        missing_component(reason)  # fails in CI, skips elsewhere
    fleet = Fleet(1).start()
    supervisor = Supervisor(tmp_path / "logs", tmp_path)
    try:
        engine = fleet.nodes[0]
        with contextlib.closing(engine.client()) as client:
            base = ensure_busybox_base(client)
            client.containers.run(
                base,
                ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                name="replica",
                detach=True,
                restart_policy={"Name": "unless-stopped"},
            )
        # The engine NodeEngine started stops (its containers with it); from now on the supervisor runs it.
        os.kill(int((engine.root / "dockerd.pid").read_text()), signal.SIGTERM)
        wait_until(lambda: not (engine.root / "dockerd.pid").exists(), 60, "the node's first dockerd to stop")
        command = dockerd_command(engine.root, engine.bridge, engine.address_pool, engine.cgroup_parent)
        supervisor.start(ProcessSpec("dockerd", command, ready_path=engine.root / "docker.sock"))
        replica_running_since(engine, supervisor)

        old = int((tmp_path / "dockerd.pid").read_text())
        os.kill(old, signal.SIGKILL)

        def answering_again() -> bool:
            supervisor.check()
            if supervisor.pid("dockerd") in (None, old):
                return False
            return engine_answers(engine)

        wait_until(answering_again, 120, "dockerd started again and answering")
        with contextlib.closing(engine.client()) as client:
            state = client.containers.get("replica").attrs["State"]
        # Not asserted: after a SIGKILL, dockerd 20.10 can lose the replica's exit while it restores its
        # containers and leave it exited despite its policy. Dockyard's fleet watch starts the stopped
        # replicas of ACTIVE deployments.
        print(f"\ndockerd SIGKILLed under the supervisor: answering again; the replica is {state['Status']}")
    finally:
        supervisor.stop_all()
        fleet.stop()


def engine_answers(engine: NodeEngine) -> bool:
    """GET /_ping on the engine's socket (by hand: the SDK leaks its socket when the engine goes away)."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(engine.root / "docker.sock"))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(100).startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def engine_client(engine: NodeEngine) -> docker.DockerClient:
    """A client that asks nothing when made (`version="auto"` would, and leak its socket when the engine
    is down): errors come from the calls made inside `closing`."""
    return docker.DockerClient(base_url=engine.docker_host, version="1.41", timeout=5)


def replica_running_since(engine: NodeEngine, supervisor: Supervisor) -> str:
    """When the container "replica" last started, once the engine answers and it runs (the supervisor
    checking its children meanwhile, as `dockyard up` does)."""
    seen: list[str] = ["nothing yet"]
    state: dict = {}

    def running() -> bool:
        nonlocal state
        supervisor.check()
        if not engine_answers(engine):
            seen[0] = "the engine does not answer"
            return False
        try:
            with contextlib.closing(engine_client(engine)) as client:
                state = client.containers.get("replica").attrs["State"]
        except (docker.errors.DockerException, requests.RequestException) as exc:
            seen[0] = f"{type(exc).__name__}: {exc}"
            return False
        seen[0] = f"state {state}"
        return bool(state.get("Running"))

    try:
        wait_until(running, 120, "the replica running on the engine")
    except TimeoutError:
        log = (supervisor.log_dir / "dockerd.log").read_text(errors="replace").splitlines()
        log = [line for line in log if "[core]" not in line and "plugin" not in line][-15:]
        raise AssertionError(f"the replica is not running: {seen[0]}\n" + "\n".join(log)) from None
    return str(state["StartedAt"])
