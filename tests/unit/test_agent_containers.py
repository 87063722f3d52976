"""The agent's commands are data: the exact docker SDK kwargs per spec, and how inspect output reads back."""

from __future__ import annotations

from typing import Any

import pytest

from agent import containers
from core.contracts import HealthCheck, ReplicaSpec, ReplicaState, ReplicaStatus

DIGEST = "sha256:" + "a" * 64
IMAGE = f"127.0.0.1:5000/apps/web@{DIGEST}"


def spec(**changes: Any) -> ReplicaSpec:
    fields: dict[str, Any] = {
        "replica_id": "dep-1-0",
        "service_id": "svc",
        "environment_id": "prod",
        "deployment_id": "dep-1",
        "image": IMAGE,
    }
    return ReplicaSpec(**(fields | changes))


def labels(**extra: str) -> dict[str, str]:
    return {
        "dockyard.managed": "true",
        "dockyard.replica": "dep-1-0",
        "dockyard.service": "svc",
        "dockyard.environment": "prod",
        "dockyard.deployment": "dep-1",
        "dockyard.port": "8080",
        "dockyard.health.timeout": "2.0",
        **extra,
    }


@pytest.mark.parametrize(
    ("given", "node_address", "expected"),
    [
        pytest.param(
            spec(),
            "127.0.0.1",
            {
                "image": IMAGE,
                "name": "dockyard-dep-1-0",
                "command": None,
                "environment": {"PORT": "8080"},
                "labels": labels(),
                "ports": {"8080/tcp": ("127.0.0.1", None)},
                "restart_policy": {"Name": "unless-stopped"},
                "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
            },
            id="defaults",
        ),
        pytest.param(
            spec(
                port=3000,
                env={"DATABASE_URL": "postgres://db", "PORT": "9999"},
                command=["node", "server.js"],
                health_check=HealthCheck(path="/healthz", timeout_seconds=5),
            ),
            "127.0.0.12",
            {
                "image": IMAGE,
                "name": "dockyard-dep-1-0",
                "command": ["node", "server.js"],
                "environment": {"DATABASE_URL": "postgres://db", "PORT": "3000"},
                "labels": labels(
                    **{
                        "dockyard.port": "3000",
                        "dockyard.health.path": "/healthz",
                        "dockyard.health.timeout": "5.0",
                    }
                ),
                "ports": {"3000/tcp": ("127.0.0.12", None)},
                "restart_policy": {"Name": "unless-stopped"},
                "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
            },
            id="port-env-command-health-on-second-node",
        ),
        pytest.param(
            spec(cpu_millis=500, memory_mb=256, stop_grace_seconds=30),  # draining seconds: the label
            "127.0.0.1",
            {
                "image": IMAGE,
                "name": "dockyard-dep-1-0",
                "command": None,
                "environment": {"PORT": "8080"},
                "labels": labels(),
                "ports": {"8080/tcp": ("127.0.0.1", None)},
                "restart_policy": {"Name": "unless-stopped"},
                "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
                "nano_cpus": 500_000_000,
                "mem_limit": "256m",
            },
            id="limits-and-draining-seconds",
        ),
    ],
)
def test_create_kwargs(given: ReplicaSpec, node_address: str, expected: dict[str, Any]) -> None:
    kwargs = containers.create_kwargs(given, node_address)
    fingerprint = kwargs["labels"].pop("dockyard.spec")
    grace = kwargs["labels"].pop("dockyard.stop-grace")
    assert grace == str(given.stop_grace_seconds or 10)
    assert containers.stop_grace_of({"Config": {"Labels": {"dockyard.stop-grace": grace}}}, 99) == int(grace)
    assert kwargs == expected
    assert fingerprint == containers.spec_fingerprint(given)


def test_fingerprint_ignores_env_order_but_not_content() -> None:
    one = spec(env={"A": "1", "B": "2"})
    assert containers.spec_fingerprint(one) == containers.spec_fingerprint(spec(env={"B": "2", "A": "1"}))
    assert containers.spec_fingerprint(one) != containers.spec_fingerprint(spec(env={"A": "1", "B": "3"}))
    assert containers.spec_fingerprint(one) != containers.spec_fingerprint(
        spec(env={"A": "1", "B": "2"}, port=1)
    )


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        pytest.param(IMAGE, None, id="pinned"),
        pytest.param("127.0.0.1:5000/apps/web:v1", "must be pinned by digest", id="tag-only"),
        pytest.param(
            "127.0.0.1:5000/apps/web@sha256:abc", "digest must be sha256:<64 hex>", id="short-digest"
        ),
        pytest.param("Web App", "invalid image reference", id="garbage"),
    ],
)
def test_image_problem(image: str, problem: str | None) -> None:
    found = containers.image_problem(image)
    assert found == problem if problem is None else problem in (found or "")


def test_image_registry() -> None:
    assert containers.image_registry(IMAGE) == "127.0.0.1:5000"
    assert containers.image_registry(f"library/web@{DIGEST}") == "docker.io"


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        pytest.param({}, ["dockyard.managed=true"], id="all"),
        pytest.param({"service_id": "svc"}, ["dockyard.managed=true", "dockyard.service=svc"], id="service"),
        pytest.param(
            {"service_id": "svc", "environment_id": "prod", "deployment_id": "d"},
            [
                "dockyard.managed=true",
                "dockyard.service=svc",
                "dockyard.environment=prod",
                "dockyard.deployment=d",
            ],
            id="all-ids",
        ),
    ],
)
def test_managed_filters(ids: dict[str, str], expected: list[str]) -> None:
    assert containers.managed_filters(**ids) == {"label": expected}


def inspected(status: str, ports: dict[str, Any] | None = None, **state: Any) -> dict[str, Any]:
    """The parts of `docker inspect` output the agent reads."""
    return {
        "Id": "c0ffee",
        "Name": "/dockyard-dep-1-0",
        "RestartCount": 2,
        "Config": {"Image": IMAGE, "Labels": labels(**{"dockyard.health.path": "/up"})},
        "State": {"Status": status, "ExitCode": 0, "Error": "", "OOMKilled": False, **state},
        "NetworkSettings": {"Ports": ports or {}},
    }


RUNNING_PORTS = {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}
BASE: dict[str, Any] = {
    "replica_id": "dep-1-0",
    "container_id": "c0ffee",
    "service_id": "svc",
    "environment_id": "prod",
    "deployment_id": "dep-1",
    "image": IMAGE,
    "restart_count": 2,
}


@pytest.mark.parametrize(
    ("attrs", "node_address", "expected"),
    [
        pytest.param(
            inspected("running", RUNNING_PORTS),
            "127.0.0.1",
            ReplicaStatus(state=ReplicaState.RUNNING, address="127.0.0.1:49153", **BASE),
            id="running",
        ),
        pytest.param(
            inspected("running", {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}]}),
            "10.0.0.5",
            ReplicaStatus(state=ReplicaState.RUNNING, address="10.0.0.5:49153", **BASE),
            id="wildcard-binding-reports-node-address",
        ),
        pytest.param(
            inspected("running", {"9999/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1"}]}),
            "127.0.0.1",
            ReplicaStatus(state=ReplicaState.RUNNING, address=None, **BASE),
            id="other-port-only",
        ),
        pytest.param(
            inspected("created"),
            "127.0.0.1",
            ReplicaStatus(state=ReplicaState.CREATED, **BASE),
            id="created",
        ),
        pytest.param(
            inspected("exited", RUNNING_PORTS, ExitCode=137),
            "127.0.0.1",
            ReplicaStatus(state=ReplicaState.EXITED, message="exited with code 137", exit_code=137, **BASE),
            id="exited-has-no-address",
        ),
        pytest.param(
            inspected("exited", ExitCode=137, OOMKilled=True),
            "127.0.0.1",
            ReplicaStatus(
                state=ReplicaState.EXITED,
                message="killed: out of memory (exit code 137)",
                exit_code=137,
                **BASE,
            ),
            id="oom",
        ),
        pytest.param(
            inspected("restarting", ExitCode=1),
            "127.0.0.1",
            ReplicaStatus(
                state=ReplicaState.RESTARTING,
                message="restarting after exit code 1 (2 restarts)",
                exit_code=1,
                **BASE,
            ),
            id="restarting",
        ),
        pytest.param(
            inspected("dead", ExitCode=128, Error="driver failed"),
            "127.0.0.1",
            ReplicaStatus(
                state=ReplicaState.EXITED, message="dead with code 128: driver failed", exit_code=128, **BASE
            ),
            id="dead",
        ),
    ],
)
def test_replica_status(attrs: dict[str, Any], node_address: str, expected: ReplicaStatus) -> None:
    assert containers.replica_status(attrs, node_address) == expected


def test_healthy_only_when_running() -> None:
    assert containers.replica_status(inspected("running", RUNNING_PORTS), "127.0.0.1", healthy=True).healthy
    assert not containers.replica_status(inspected("exited"), "127.0.0.1", healthy=True).healthy


def test_health_check_read_back_from_labels() -> None:
    assert containers.health_check_of(inspected("running")) == HealthCheck(path="/up", timeout_seconds=2.0)
    assert containers.health_check_of({"Config": {"Labels": {}}}) == HealthCheck()
