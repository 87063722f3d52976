"""A replica's container made anew from its inspect output (agent.containers.recreate_kwargs) is the one
create_kwargs made: what the agent does when an engine restart left a container it cannot start again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import pytest

from agent.containers import create_kwargs, recreate_kwargs
from cli.baseimage import ensure_busybox_base
from core.contracts import ReplicaSpec

pytestmark = pytest.mark.timeout(120)

COMPARED = (
    ("Config", "Image"),
    ("Config", "Cmd"),
    ("Config", "Env"),
    ("Config", "Labels"),
    ("HostConfig", "PortBindings"),
    ("HostConfig", "RestartPolicy"),
    ("HostConfig", "LogConfig"),
    ("HostConfig", "NanoCpus"),
    ("HostConfig", "Memory"),
)


@pytest.fixture
def made(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        try:
            docker_client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass


@pytest.mark.parametrize(
    "limits",
    [pytest.param({}, id="unlimited"), pytest.param({"cpu_millis": 250, "memory_mb": 64}, id="limited")],
)
def test_a_recreated_container_has_the_configuration_of_the_original(
    docker_client: docker.DockerClient, made: list[str], limits: dict[str, Any]
) -> None:
    spec = ReplicaSpec(
        replica_id=f"dep-recreate-{len(limits)}",
        service_id="svc_recreate",
        environment_id="env_recreate",
        deployment_id="dep_recreate",
        image=ensure_busybox_base(docker_client),
        port=8090,
        env={"GREETING": "hello world", "EMPTY": ""},
        command=["busybox", "sleep", "60"],
        stop_grace_seconds=3,
        **limits,
    )
    original = docker_client.containers.create(**create_kwargs(spec, "127.0.0.1"))
    made.append(original.name or "")
    before = docker_client.api.inspect_container(original.id)
    original.remove(force=True)

    again = docker_client.containers.create(**recreate_kwargs(before))
    after = docker_client.api.inspect_container(again.id)

    assert after["Name"] == before["Name"]
    assert after["Id"] != before["Id"]
    for section, key in COMPARED:
        assert after[section][key] == before[section][key], f"{section}.{key}"
