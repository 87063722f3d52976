# ruff: noqa: F811 - the fixtures of test_agent.py, imported, are parameters here
"""Replicas that fail on the real Docker Engine, seen through the agent and the activities that drive it:
a request Docker refuses (4xx) is a 422 with Docker's words, a replica that keeps exiting fails the
health step after a few restarts with its exit code and log tail, a process that accepts connections
and then dies never passes a TCP-only check, and a replica that starts crashing after the cut-over is
caught by the stability window."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import docker
import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.agents import AgentActivities
from activities.contracts import NodeRef, ReplicaBatch, StabilityWatch
from agent.app import create_app
from agent.runtime import DockerRuntime
from core.agent_client import AgentClient
from core.contracts import HealthCheck, ReplicaSpec, ReplicaState
from core.settings import Settings, load_settings
from tests.integration.test_agent import (  # noqa: F401 - fixtures
    agent,
    agent_error,
    agent_settings,
    app_image,
    ensure,
    ensured,
    environment_id,
    make_spec,
    registry,
)
from tests.support.registry import Registry

pytestmark = pytest.mark.timeout(120)

CRASH = ["sh", "-c", "echo booting the app; echo 'fatal: DATABASE_URL is not set' >&2; exit 3"]
# Accepts (busybox httpd answers) for a second, then the whole container exits.
ACCEPT_THEN_DIE = [
    "sh",
    "-c",
    "busybox httpd -f -p $PORT -h /www & sleep 1; echo 'worker failed to boot'; exit 4",
]
# Serves for a while, then crashes, and from then on at every start: passes any health check, fails the
# stability window.
SERVE_THEN_CRASH = [
    "sh",
    "-c",
    "if [ -f /tmp/crashed ]; then echo 'segfault at start'; exit 139; fi; "
    "busybox httpd -f -p $PORT -h /www & sleep 4; touch /tmp/crashed; echo 'segfault in handler'; exit 139",
]


class InProcessAgents(AgentActivities):
    """The real activities, talking to the real agent app in this process (ASGI) instead of over TCP."""

    def __init__(self, settings: Settings, transport: httpx.ASGITransport) -> None:
        super().__init__(settings)
        self.transport = transport

    @asynccontextmanager
    async def agent_for(self, node: NodeRef) -> AsyncIterator[AgentClient]:
        async with AgentClient("http://agent", "agent-test-token") as client:
            await client._http.aclose()
            client._http = httpx.AsyncClient(
                transport=self.transport,
                base_url="http://agent",
                headers={"Authorization": "Bearer agent-test-token"},
            )
            yield client


@pytest.fixture
async def activities(
    registry: Registry, docker_client: docker.DockerClient
) -> AsyncIterator[InProcessAgents]:
    settings = agent_settings(registry)
    runtime = DockerRuntime(settings.docker_host)
    transport = httpx.ASGITransport(app=create_app(settings, runtime))
    platform = load_settings(health_timeout_seconds=30, health_stable_seconds=2.5, stability_window_seconds=8)
    try:
        yield InProcessAgents(platform, transport)
    finally:
        runtime.close()


async def test_a_limit_docker_refuses_is_a_422_with_dockers_words(
    agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec]
) -> None:
    cpus = os.cpu_count() or 1
    spec = make_spec(cpu_millis=(cpus + 8) * 1000)

    response = await ensure(agent, spec)

    assert response.status_code == 422, response.text
    error = agent_error(response)
    assert error.step == "create"
    assert "Range of CPUs is from 0.01 to" in error.reason, error.reason


async def test_a_refused_create_ends_the_start_step_without_retry(
    activities: InProcessAgents, make_spec: Callable[..., ReplicaSpec]
) -> None:
    spec = make_spec(cpu_millis=((os.cpu_count() or 1) + 8) * 1000)

    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.ensure_replicas, ReplicaBatch(specs=[spec]))

    assert refused.value.non_retryable
    assert "create failed" in refused.value.message and "Range of CPUs" in refused.value.message


async def test_a_replica_that_keeps_exiting_fails_health_after_a_few_restarts_with_its_log(
    activities: InProcessAgents, agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec]
) -> None:
    spec = make_spec(command=CRASH)
    await ensured(agent, spec)
    started = time.monotonic()

    with pytest.raises(ApplicationError) as crashed:
        await ActivityEnvironment().run(activities.wait_replicas_healthy, ReplicaBatch(specs=[spec]))

    took = time.monotonic() - started
    error = crashed.value
    assert error.non_retryable and error.type == "ReplicaCrashLoop"
    assert "exit code 3" in error.message, error.message
    assert "fatal: DATABASE_URL is not set" in error.message
    assert "booting the app" in error.message
    assert took < 15, f"the crash loop took {took:.1f}s to be seen (the health timeout is 30s)"
    print(f"crash loop seen after {took:.1f}s: {error.message}")


async def test_a_process_that_accepts_and_then_dies_never_passes_a_tcp_check(
    activities: InProcessAgents, agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec]
) -> None:
    spec = make_spec(command=ACCEPT_THEN_DIE, health_check=HealthCheck(path=None, timeout_seconds=1))
    await ensured(agent, spec)

    with pytest.raises(ApplicationError) as crashed:
        await ActivityEnvironment().run(activities.wait_replicas_healthy, ReplicaBatch(specs=[spec]))

    assert crashed.value.type == "ReplicaCrashLoop", crashed.value.message
    assert "exit code 4" in crashed.value.message
    assert "worker failed to boot" in crashed.value.message


async def test_a_tcp_check_passes_once_the_port_stays_up(
    activities: InProcessAgents, agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec]
) -> None:
    spec = make_spec(health_check=HealthCheck(path=None, timeout_seconds=1))
    await ensured(agent, spec)

    healthy = await ActivityEnvironment().run(activities.wait_replicas_healthy, ReplicaBatch(specs=[spec]))

    (status,) = healthy.replicas
    assert status.healthy and status.state is ReplicaState.RUNNING and status.restart_count == 0


async def test_the_stability_window_catches_a_replica_that_crashes_after_passing_health(
    activities: InProcessAgents, agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec]
) -> None:
    spec = make_spec(command=SERVE_THEN_CRASH)
    await ensured(agent, spec)
    healthy = await ActivityEnvironment().run(activities.wait_replicas_healthy, ReplicaBatch(specs=[spec]))

    with pytest.raises(ApplicationError) as unstable:
        await ActivityEnvironment().run(
            activities.watch_replicas_stable, StabilityWatch(replicas=healthy.replicas)
        )

    assert unstable.value.type == "ReplicaUnstable" and unstable.value.non_retryable
    assert "code 139" in unstable.value.message, unstable.value.message
    assert "segfault in handler" in unstable.value.message


async def test_a_stable_replica_passes_the_window(
    activities: InProcessAgents, agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec]
) -> None:
    spec = make_spec()
    await ensured(agent, spec)
    healthy = await ActivityEnvironment().run(activities.wait_replicas_healthy, ReplicaBatch(specs=[spec]))
    started = time.monotonic()

    await ActivityEnvironment().run(
        activities.watch_replicas_stable, StabilityWatch(replicas=healthy.replicas)
    )

    assert 7.5 <= time.monotonic() - started < 12


async def test_a_replica_stopped_in_the_window_is_no_instability(
    activities: InProcessAgents,
    agent: httpx.AsyncClient,
    make_spec: Callable[..., ReplicaSpec],
    docker_client: Any,
) -> None:
    """`dockyard down` (or `docker stop`) in the window stops the replica: that is no crash of the release,
    which must not be rolled back for it (a first release would lose its route)."""
    spec = make_spec()
    await ensured(agent, spec)
    healthy = await ActivityEnvironment().run(activities.wait_replicas_healthy, ReplicaBatch(specs=[spec]))
    watched = asyncio.ensure_future(
        ActivityEnvironment().run(activities.watch_replicas_stable, StabilityWatch(replicas=healthy.replicas))
    )
    await asyncio.sleep(1)
    await asyncio.to_thread(docker_client.containers.get(f"dockyard-{spec.replica_id}").stop, timeout=1)

    await watched  # the window passes: no ReplicaUnstable


async def test_a_retry_after_the_window_passes_at_once(
    activities: InProcessAgents, agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec]
) -> None:
    """The platform was down past the window (its first attempt 60 s ago): nothing is watched any more."""
    spec = make_spec()
    await ensured(agent, spec)
    healthy = await ActivityEnvironment().run(activities.wait_replicas_healthy, ReplicaBatch(specs=[spec]))
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, attempt=2, heartbeat_details=[time.time() - 60])
    crashed = healthy.replicas[0].model_copy(update={"restart_count": -1})  # any probe now would fail it

    await environment.run(activities.watch_replicas_stable, StabilityWatch(replicas=[crashed]))


async def test_the_logs_route_answers_the_last_lines(
    agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec], docker_client: Any
) -> None:
    spec = make_spec(command=["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; sleep 30"])
    await ensured(agent, spec)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = await agent.get(f"/v1/replicas/{spec.replica_id}/logs", params={"tail": 2})
        assert response.status_code == 200, response.text
        if response.json()["lines"] == ["line 4", "line 5"]:
            break
    assert response.json() == {"replica_id": spec.replica_id, "lines": ["line 4", "line 5"]}
    assert (await agent.get("/v1/replicas/nope-0/logs")).status_code == 404
    assert (await agent.get(f"/v1/replicas/{spec.replica_id}/logs", params={"tail": 201})).status_code == 422


async def test_a_retried_health_step_keeps_the_deadline_of_its_first_attempt(
    activities: InProcessAgents, agent: httpx.AsyncClient, make_spec: Callable[..., ReplicaSpec]
) -> None:
    spec = make_spec(command=["sh", "-c", "echo never listening; sleep 60"])
    await ensured(agent, spec)
    environment = ActivityEnvironment()
    # A retry: the first attempt, 29 s ago, heartbeated when it started (the health timeout is 30 s).
    environment.info = dataclasses.replace(environment.info, attempt=2, heartbeat_details=[time.time() - 29])
    started = time.monotonic()

    with pytest.raises(ApplicationError) as timed_out:
        await environment.run(activities.wait_replicas_healthy, ReplicaBatch(specs=[spec]))

    assert timed_out.value.type == "HealthCheckTimeout"
    assert time.monotonic() - started < 5
