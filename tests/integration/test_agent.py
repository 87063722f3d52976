"""The node agent against the real Docker Engine and a real registry (htpasswd auth): ensure, status,
list, remove, errors and auth, each through the HTTP API exactly as the control plane calls it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from agent.app import create_app
from agent.runtime import DockerRuntime
from agent.settings import AgentSettings
from core.contracts import (
    AgentError,
    HealthCheck,
    Heartbeat,
    NodeInfo,
    ReplicaSpec,
    ReplicaState,
    ReplicaStatus,
)
from tests.support import DOCKER_HOST, missing_component
from tests.support.images import build_http_image
from tests.support.registry import PushedImage, Registry, push_image

pytestmark = pytest.mark.timeout(120)

TOKEN = "agent-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = "hello from a dockyard replica"


# --- real components ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    if reason := Registry.available():
        missing_component(reason)
    with Registry() as running:
        yield running


@pytest.fixture(scope="module")
def app_image(docker_client: docker.DockerClient, registry: Registry) -> Iterator[PushedImage]:
    """The test app pushed to the registry, then removed locally, so the first ensure really pulls."""
    local = f"dockyard-test/agent-app:{uuid.uuid4().hex[:8]}"
    build_http_image(docker_client, local, BODY)
    pushed = push_image(docker_client, registry, local, "apps/agent-test")
    forget_image(docker_client, local, pushed.tagged)
    yield pushed
    forget_image(docker_client, pushed.ref)


def forget_image(client: docker.DockerClient, *refs: str) -> None:
    for ref in refs:
        try:
            client.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass


# --- the agent under test -------------------------------------------------------------------------


def agent_settings(registry: Registry, **changes: Any) -> AgentSettings:
    fields: dict[str, Any] = {
        "token": TOKEN,
        "node_name": "test-node",
        "node_address": "127.0.0.1",
        "docker_host": DOCKER_HOST,
        "registry_host": registry.host,
        "registry_username": registry.username,
        "registry_password": registry.password,
        "stop_timeout_seconds": 2,
    }
    return AgentSettings(**(fields | changes))


@asynccontextmanager
async def running_agent(
    settings: AgentSettings, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    runtime = DockerRuntime(settings.docker_host)
    transport = httpx.ASGITransport(app=create_app(settings, runtime))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://agent", headers=AUTH if headers is None else headers
        ) as http:
            yield http
    finally:
        runtime.close()


@pytest.fixture
async def agent(registry: Registry, docker_client: docker.DockerClient) -> AsyncIterator[httpx.AsyncClient]:
    async with running_agent(agent_settings(registry)) as http:
        yield http


@pytest.fixture
def environment_id(docker_client: docker.DockerClient) -> Iterator[str]:
    """A fresh environment id per test; every container labelled with it is removed afterwards."""
    env_id = f"test-{uuid.uuid4().hex[:10]}"
    yield env_id
    for container in docker_client.containers.list(
        all=True, filters={"label": f"dockyard.environment={env_id}"}
    ):
        container.remove(force=True)


@pytest.fixture
def make_spec(app_image: PushedImage, environment_id: str) -> Callable[..., ReplicaSpec]:
    def make(replica: str = "0", **changes: Any) -> ReplicaSpec:
        fields: dict[str, Any] = {
            "replica_id": f"{environment_id}-{replica}",
            "service_id": "web",
            "environment_id": environment_id,
            "deployment_id": "dep-1",
            "image": app_image.ref,
            "health_check": HealthCheck(path="/healthz", timeout_seconds=2),
        }
        return ReplicaSpec(**(fields | changes))

    return make


async def ensure(agent: httpx.AsyncClient, spec: ReplicaSpec) -> httpx.Response:
    return await agent.put(f"/v1/replicas/{spec.replica_id}", json=spec.model_dump(mode="json"))


async def ensured(agent: httpx.AsyncClient, spec: ReplicaSpec) -> ReplicaStatus:
    response = await ensure(agent, spec)
    assert response.status_code == 200, response.text
    return ReplicaStatus.model_validate(response.json())


async def until_healthy(
    agent: httpx.AsyncClient, replica_id: str, within_seconds: float = 20
) -> ReplicaStatus:
    deadline = time.monotonic() + within_seconds
    while True:
        response = await agent.get(f"/v1/replicas/{replica_id}")
        assert response.status_code == 200, response.text
        status = ReplicaStatus.model_validate(response.json())
        if status.healthy or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


async def fetch(address: str, path: str = "/") -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        return await http.get(f"http://{address}{path}")


def containers_of(client: docker.DockerClient, replica_id: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"dockyard.replica={replica_id}"})


def agent_error(response: httpx.Response) -> AgentError:
    return AgentError.model_validate(response.json())


# --- ensure -----------------------------------------------------------------------------------------


async def test_ensure_pulls_creates_and_serves(
    agent: httpx.AsyncClient, docker_client: docker.DockerClient, app_image: PushedImage, make_spec: Any
) -> None:
    forget_image(docker_client, app_image.ref)
    spec = make_spec(env={"GREETING": "hi"})

    status = await ensured(agent, spec)

    assert status.state is ReplicaState.RUNNING
    assert (status.replica_id, status.service_id, status.deployment_id) == (spec.replica_id, "web", "dep-1")
    assert status.image == app_image.ref
    assert status.address is not None and status.address.startswith("127.0.0.1:")
    docker_client.images.get(app_image.ref)  # pulled by digest from the registry
    healthy = await until_healthy(agent, spec.replica_id)
    assert healthy.healthy, healthy
    assert healthy.address == status.address
    assert (await fetch(status.address)).text == BODY
    container = docker_client.containers.get(f"dockyard-{spec.replica_id}")
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert {"GREETING=hi", "PORT=8080"} <= set(container.attrs["Config"]["Env"])
    assert container.labels["dockyard.managed"] == "true"
    assert container.labels["dockyard.environment"] == spec.environment_id


async def test_a_replica_runs_with_its_limits_and_stops_with_its_grace(
    agent: httpx.AsyncClient, docker_client: docker.DockerClient, make_spec: Any
) -> None:
    spec = make_spec(cpu_millis=250, memory_mb=64, stop_grace_seconds=1)
    await ensured(agent, spec)
    container = docker_client.containers.get(f"dockyard-{spec.replica_id}")
    host = container.attrs["HostConfig"]
    assert (host["NanoCpus"], host["Memory"]) == (250_000_000, 64 * 2**20)
    assert container.labels["dockyard.stop-grace"] == "1"
    assert (await agent.delete(f"/v1/replicas/{spec.replica_id}")).status_code == 204  # its own grace
    assert containers_of(docker_client, spec.replica_id) == []


async def test_repeated_put_is_a_no_op(
    agent: httpx.AsyncClient, docker_client: docker.DockerClient, make_spec: Any
) -> None:
    spec = make_spec()
    first = await ensured(agent, spec)
    again = [await ensured(agent, spec) for _ in range(3)]

    assert {status.container_id for status in again} == {first.container_id}
    assert {status.address for status in again} == {first.address}
    assert len(containers_of(docker_client, spec.replica_id)) == 1


async def test_concurrent_puts_create_one_container(
    registry: Registry, docker_client: docker.DockerClient, make_spec: Any
) -> None:
    spec = make_spec()
    # Two agents on one engine: the per-replica lock covers one process, Docker's 409 covers the other.
    async with running_agent(agent_settings(registry)) as one, running_agent(agent_settings(registry)) as two:
        statuses = await asyncio.gather(*(ensured(agent, spec) for agent in (one, two, one, two, one, two)))

    assert len({status.container_id for status in statuses}) == 1
    assert all(status.state is ReplicaState.RUNNING for status in statuses)
    assert len(containers_of(docker_client, spec.replica_id)) == 1


async def test_put_restarts_a_container_killed_behind_its_back(
    agent: httpx.AsyncClient, docker_client: docker.DockerClient, make_spec: Any
) -> None:
    spec = make_spec()
    first = await ensured(agent, spec)
    container = docker_client.containers.get(first.container_id)
    container.kill()
    container.reload()
    assert container.status == "exited"
    stopped = ReplicaStatus.model_validate((await agent.get(f"/v1/replicas/{spec.replica_id}")).json())
    assert (stopped.state, stopped.healthy, stopped.address) == (ReplicaState.EXITED, False, None)

    restarted = await ensured(agent, spec)

    assert restarted.container_id == first.container_id
    assert restarted.state is ReplicaState.RUNNING
    assert (await until_healthy(agent, spec.replica_id)).healthy


async def test_changed_spec_for_same_replica_is_a_conflict(agent: httpx.AsyncClient, make_spec: Any) -> None:
    await ensured(agent, make_spec())

    response = await ensure(agent, make_spec(env={"CHANGED": "1"}))

    assert response.status_code == 409
    error = agent_error(response)
    assert (error.step, error.replica_id) == ("ensure", make_spec().replica_id)
    assert "immutable" in error.reason


async def test_tcp_probe_needs_a_listening_process(agent: httpx.AsyncClient, make_spec: Any) -> None:
    listening = make_spec("tcp", health_check=HealthCheck())
    silent = make_spec("silent", health_check=HealthCheck(), command=["sleep", "300"])
    await ensured(agent, listening)
    await ensured(agent, silent)

    assert (await until_healthy(agent, listening.replica_id)).healthy
    # Docker's proxy accepts the connection on the published port even though nothing listens behind it.
    unhealthy = await until_healthy(agent, silent.replica_id, within_seconds=1)
    assert not unhealthy.healthy
    assert unhealthy.message == f"nothing accepts TCP connections on port {silent.port}"


async def test_an_http_health_check_that_fails_says_what_it_got(
    agent: httpx.AsyncClient, make_spec: Any
) -> None:
    spec = make_spec("missing-path", health_check=HealthCheck(path="/no-such-path"))
    await ensured(agent, spec)
    status = await until_healthy(agent, spec.replica_id, within_seconds=1)
    assert not status.healthy
    assert status.message == "GET /no-such-path answered HTTP 404"


# --- list, status, remove ---------------------------------------------------------------------------


async def test_list_filters_by_ids(agent: httpx.AsyncClient, make_spec: Any, environment_id: str) -> None:
    web = [make_spec("w0"), make_spec("w1", deployment_id="dep-2")]
    worker = make_spec("k0", service_id="worker")
    for spec in [*web, worker]:
        await ensured(agent, spec)

    async def listed(**params: str) -> list[str]:
        response = await agent.get("/v1/replicas", params={"environment_id": environment_id, **params})
        assert response.status_code == 200, response.text
        return [ReplicaStatus.model_validate(item).replica_id for item in response.json()]

    assert await listed(service_id="web") == [spec.replica_id for spec in web]
    assert await listed(service_id="worker") == [worker.replica_id]
    assert await listed(service_id="web", deployment_id="dep-2") == [web[1].replica_id]
    assert await listed() == sorted(spec.replica_id for spec in [*web, worker])


async def test_delete_removes_and_is_idempotent(
    agent: httpx.AsyncClient, docker_client: docker.DockerClient, make_spec: Any
) -> None:
    spec = make_spec()
    await ensured(agent, spec)

    first = await agent.delete(f"/v1/replicas/{spec.replica_id}", params={"grace_seconds": 5})
    again = await agent.delete(f"/v1/replicas/{spec.replica_id}")

    assert (first.status_code, again.status_code) == (204, 204)
    assert containers_of(docker_client, spec.replica_id) == []
    missing = await agent.get(f"/v1/replicas/{spec.replica_id}")
    assert missing.status_code == 404
    assert agent_error(missing) == AgentError(
        step="find",
        reason=f"no container dockyard-{spec.replica_id} on node test-node",
        replica_id=spec.replica_id,
    )


async def test_node_info(agent: httpx.AsyncClient, docker_client: docker.DockerClient) -> None:
    response = await agent.get("/v1/node")

    assert response.status_code == 200
    assert NodeInfo.model_validate(response.json()) == NodeInfo(
        name="test-node", address="127.0.0.1", docker_version=docker_client.version()["Version"]
    )


async def test_heartbeat_reports_capacity_usage_labels_and_every_owned_container(
    agent: httpx.AsyncClient, make_spec: Any
) -> None:
    spec = make_spec()
    await ensured(agent, spec)

    heartbeat = Heartbeat.model_validate((await agent.get("/v1/heartbeat")).json())

    assert heartbeat.node.name == "test-node"
    assert heartbeat.capacity.cpu_millis >= 1000 and heartbeat.capacity.memory_mb > 0
    assert heartbeat.capacity.disk_mb >= heartbeat.usage.disk_mb > 0
    assert 0 < heartbeat.usage.memory_mb <= heartbeat.capacity.memory_mb
    assert spec.replica_id in {replica.replica_id for replica in heartbeat.replicas}


# --- errors -----------------------------------------------------------------------------------------


async def test_unknown_digest_is_a_pull_error(
    agent: httpx.AsyncClient, app_image: PushedImage, make_spec: Any
) -> None:
    image = f"{app_image.repository}@sha256:{'0' * 64}"
    spec = make_spec(image=image)

    response = await ensure(agent, spec)

    assert response.status_code == 502
    error = agent_error(response)
    assert (error.step, error.replica_id) == ("pull", spec.replica_id)
    assert "manifest unknown" in error.reason
    assert error.reason.endswith(f"for image {image}")


async def test_wrong_registry_password_is_a_pull_error_without_the_password(
    registry: Registry, docker_client: docker.DockerClient, app_image: PushedImage, make_spec: Any
) -> None:
    forget_image(docker_client, app_image.ref)
    wrong = "not-the-password-" + uuid.uuid4().hex
    async with running_agent(agent_settings(registry, registry_password=wrong)) as agent:
        response = await ensure(agent, make_spec())

    assert response.status_code == 502
    error = agent_error(response)
    assert error.step == "pull"
    assert "unauthorized" in error.reason
    assert wrong not in response.text and registry.password not in response.text


async def test_tag_only_image_is_rejected(
    agent: httpx.AsyncClient, app_image: PushedImage, make_spec: Any
) -> None:
    response = await ensure(agent, make_spec(image=app_image.tagged))

    assert response.status_code == 422
    error = agent_error(response)
    assert error.step == "validate"
    assert "pinned by digest" in error.reason


async def test_replica_id_must_match_the_path(agent: httpx.AsyncClient, make_spec: Any) -> None:
    spec = make_spec()

    response = await agent.put("/v1/replicas/other-id", json=spec.model_dump(mode="json"))

    assert response.status_code == 422
    error = agent_error(response)
    assert (error.step, error.replica_id) == ("validate", "other-id")
    assert error.reason.startswith("body.replica_id:")


async def test_invalid_body_names_the_field(agent: httpx.AsyncClient, make_spec: Any) -> None:
    body = make_spec().model_dump(mode="json") | {"port": 0}

    response = await agent.put(f"/v1/replicas/{body['replica_id']}", json=body)

    assert response.status_code == 422
    assert agent_error(response).reason.startswith("body.port:")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({}, "missing bearer token", id="missing"),
        pytest.param({"Authorization": "Bearer wrong-token"}, "invalid bearer token", id="wrong"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, "missing bearer token", id="wrong-scheme"),
    ],
)
async def test_v1_requires_the_token(registry: Registry, headers: dict[str, str], reason: str) -> None:
    async with running_agent(agent_settings(registry), headers=headers) as agent:
        for method, path in [("GET", "/v1/node"), ("GET", "/v1/replicas"), ("DELETE", "/v1/replicas/x")]:
            response = await agent.request(method, path)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith('Bearer realm="dockyard-agent"')
            assert agent_error(response) == AgentError(step="authenticate", reason=reason)
        assert (await agent.get("/healthz")).status_code == 200


async def test_unreachable_docker_is_a_503_naming_the_step(registry: Registry, tmp_path: Any) -> None:
    settings = agent_settings(registry, docker_host=f"unix://{tmp_path}/no-docker.sock")
    async with running_agent(settings) as agent:
        node = await agent.get("/v1/node")
        listed = await agent.get("/v1/replicas")
        alive = await agent.get("/healthz")

    assert (node.status_code, listed.status_code, alive.status_code) == (503, 503, 200)
    assert agent_error(node).step == "node"
    assert agent_error(listed).step == "list"
    assert "docker engine unreachable" in agent_error(node).reason
