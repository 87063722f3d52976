"""Commands are data: what the agent asks Docker for, built by pure functions from a ReplicaSpec,
and how Docker's answers (inspect output) are read back into ReplicaStatus.

Nothing here does I/O; `agent.runtime` is the one executor.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from core.contracts import HealthCheck, ReplicaSpec, ReplicaState, ReplicaStatus
from core.images import InvalidImageReference, parse_image_reference

CONTAINER_PREFIX = "dockyard-"

LABEL_MANAGED = "dockyard.managed"
LABEL_REPLICA = "dockyard.replica"
LABEL_SERVICE = "dockyard.service"
LABEL_ENVIRONMENT = "dockyard.environment"
LABEL_DEPLOYMENT = "dockyard.deployment"
LABEL_PROJECT = "dockyard.project"
LABEL_PORT = "dockyard.port"
LABEL_HEALTH_PATH = "dockyard.health.path"
LABEL_HEALTH_TIMEOUT = "dockyard.health.timeout"
# SIGTERM → SIGKILL when the replica is stopped (its service's draining seconds): whoever stops it later
# reads it here (the SDK's containers.create takes no StopTimeout).
LABEL_STOP_GRACE = "dockyard.stop-grace"
# Replicas are immutable (one id, one spec): the fingerprint lets a repeated PUT tell "same" from "changed".
LABEL_SPEC = "dockyard.spec"

# Docker's json-file driver grows without bound by default; a PaaS node must not fill its disk with logs.
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}}

_DOCKER_STATES = {
    "created": ReplicaState.CREATED,
    "running": ReplicaState.RUNNING,
    "paused": ReplicaState.RUNNING,
    "restarting": ReplicaState.RESTARTING,
    "removing": ReplicaState.EXITED,
    "exited": ReplicaState.EXITED,
    "dead": ReplicaState.EXITED,
}


def container_name(replica_id: str) -> str:
    return f"{CONTAINER_PREFIX}{replica_id}"


def image_problem(image: str) -> str | None:
    """Why `image` cannot be run by the agent, or None: it must be `registry/name@sha256:...`."""
    try:
        ref = parse_image_reference(image)
    except InvalidImageReference as exc:
        return str(exc)
    if ref.digest is None:
        return f"image {image!r} must be pinned by digest (registry/name@sha256:...)"
    return None


def image_registry(image: str) -> str:
    return parse_image_reference(image).registry


def spec_fingerprint(spec: ReplicaSpec) -> str:
    canonical = json.dumps(
        spec.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":")
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def replica_labels(spec: ReplicaSpec) -> dict[str, str]:
    labels = {
        LABEL_MANAGED: "true",
        LABEL_REPLICA: spec.replica_id,
        LABEL_SERVICE: spec.service_id,
        LABEL_ENVIRONMENT: spec.environment_id,
        LABEL_DEPLOYMENT: spec.deployment_id,
        LABEL_PORT: str(spec.port),
        LABEL_HEALTH_TIMEOUT: str(spec.health_check.timeout_seconds),
        LABEL_SPEC: spec_fingerprint(spec),
    }
    if spec.health_check.path is not None:
        labels[LABEL_HEALTH_PATH] = spec.health_check.path
    if spec.project_id is not None:
        labels[LABEL_PROJECT] = spec.project_id
    return labels


def create_kwargs(spec: ReplicaSpec, node_address: str, stop_grace_seconds: int = 10) -> dict[str, Any]:
    """The exact keyword arguments of docker SDK `containers.create` for one replica."""
    limits: dict[str, Any] = {}
    if spec.cpu_millis is not None:
        limits["nano_cpus"] = spec.cpu_millis * 1_000_000
    if spec.memory_mb is not None:
        limits["mem_limit"] = f"{spec.memory_mb}m"
    return {
        "image": spec.image,
        "name": container_name(spec.replica_id),
        "command": spec.command,
        # $PORT always matches the published port, whatever spec.env says.
        "environment": {**spec.env, "PORT": str(spec.port)},
        "labels": {
            **replica_labels(spec),
            LABEL_STOP_GRACE: str(
                spec.stop_grace_seconds if spec.stop_grace_seconds is not None else stop_grace_seconds
            ),
        },
        # Docker picks the host port; the agent reads it back from NetworkSettings.
        "ports": {f"{spec.port}/tcp": (node_address, None)},
        "restart_policy": {"Name": "unless-stopped"},
        "log_config": LOG_CONFIG,
        **limits,
    }


def recreate_kwargs(attrs: dict[str, Any]) -> dict[str, Any]:
    """The `containers.create` arguments that make a container anew exactly as `attrs` (its inspect output)
    was made by `create_kwargs`: same name, image, command, environment, labels (so the same spec
    fingerprint), published port (Docker picks the host port again), restart policy, logs and limits."""
    config, host = attrs.get("Config") or {}, attrs.get("HostConfig") or {}
    ports = {
        port: (
            bindings[0].get("HostIp") or None,
            int(bindings[0]["HostPort"]) if bindings[0].get("HostPort") else None,
        )
        for port, bindings in (host.get("PortBindings") or {}).items()
        if bindings
    }
    log_config = host.get("LogConfig") or {}
    kwargs: dict[str, Any] = {
        "image": config.get("Image"),
        "name": attrs.get("Name", "").lstrip("/"),
        "command": config.get("Cmd"),
        "environment": config.get("Env") or [],
        "labels": config.get("Labels") or {},
        "ports": ports,
        "restart_policy": host.get("RestartPolicy") or {"Name": "unless-stopped"},
        "log_config": {"type": log_config.get("Type", "json-file"), "config": log_config.get("Config") or {}},
    }
    if host.get("NanoCpus"):
        kwargs["nano_cpus"] = host["NanoCpus"]
    if host.get("Memory"):
        kwargs["mem_limit"] = host["Memory"]
    return kwargs


def managed_filters(
    service_id: str | None = None,
    environment_id: str | None = None,
    deployment_id: str | None = None,
) -> dict[str, list[str]]:
    """Docker `filters` selecting the agent's containers, narrowed by any ids given."""
    labels = [f"{LABEL_MANAGED}=true"]
    for label, value in (
        (LABEL_SERVICE, service_id),
        (LABEL_ENVIRONMENT, environment_id),
        (LABEL_DEPLOYMENT, deployment_id),
    ):
        if value is not None:
            labels.append(f"{label}={value}")
    return {"label": labels}


def labels_of(attrs: dict[str, Any]) -> dict[str, str]:
    return (attrs.get("Config") or {}).get("Labels") or {}


def health_check_of(attrs: dict[str, Any]) -> HealthCheck:
    labels = labels_of(attrs)
    timeout = labels.get(LABEL_HEALTH_TIMEOUT)
    return HealthCheck(
        path=labels.get(LABEL_HEALTH_PATH) or None,
        timeout_seconds=float(timeout) if timeout else HealthCheck().timeout_seconds,
    )


def container_address(attrs: dict[str, Any]) -> str | None:
    """`ip:port` of the replica inside its Docker network, reachable from the node itself.

    Probing it needs no guesswork, unlike the published port, where Docker's userland proxy accepts
    connections even when nothing listens behind it."""
    port = labels_of(attrs).get(LABEL_PORT)
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    for network in networks.values():
        if port and network.get("IPAddress"):
            return f"{network['IPAddress']}:{port}"
    return None


def published_address(attrs: dict[str, Any], node_address: str) -> str | None:
    """`host:port` of the replica's published port, or None while it is not running."""
    port = labels_of(attrs).get(LABEL_PORT)
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    bindings = ports.get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            host = binding.get("HostIp") or node_address
            if host in ("0.0.0.0", "::"):
                host = node_address
            return f"[{host}]:{binding['HostPort']}" if ":" in host else f"{host}:{binding['HostPort']}"
    return None


def _state_message(attrs: dict[str, Any]) -> str | None:
    state = attrs.get("State") or {}
    status = state.get("Status")
    detail = f": {state['Error']}" if state.get("Error") else ""
    if state.get("OOMKilled"):
        return f"killed: out of memory (exit code {state.get('ExitCode')}){detail}"
    if status == "paused":
        return "paused"
    if status == "restarting":
        return f"restarting after exit code {state.get('ExitCode')} ({attrs.get('RestartCount', 0)} restarts)"
    if status in ("exited", "dead"):
        return f"{status} with code {state.get('ExitCode')}{detail}"
    return detail[2:] or None


def replica_status(attrs: dict[str, Any], node_address: str, healthy: bool = False) -> ReplicaStatus:
    """Read a container's inspect output (docker SDK `Container.attrs`) as a ReplicaStatus."""
    labels = labels_of(attrs)
    state = _DOCKER_STATES.get((attrs.get("State") or {}).get("Status", ""), ReplicaState.EXITED)
    return ReplicaStatus(
        replica_id=labels.get(LABEL_REPLICA)
        or attrs.get("Name", "").lstrip("/").removeprefix(CONTAINER_PREFIX),
        state=state,
        healthy=healthy and state is ReplicaState.RUNNING,
        address=published_address(attrs, node_address) if state is ReplicaState.RUNNING else None,
        container_id=attrs.get("Id"),
        service_id=labels.get(LABEL_SERVICE),
        environment_id=labels.get(LABEL_ENVIRONMENT),
        deployment_id=labels.get(LABEL_DEPLOYMENT),
        image=(attrs.get("Config") or {}).get("Image"),
        message=_state_message(attrs),
        restart_count=int(attrs.get("RestartCount") or 0),
        exit_code=_exit_code(attrs),
    )


def _exit_code(attrs: dict[str, Any]) -> int | None:
    """The code of the last exit, while the container is down (exited, restarting); None while it runs:
    Docker resets ExitCode to 0 when it starts the container again."""
    state = attrs.get("State") or {}
    if state.get("Status") in ("running", "created", "paused"):
        return None
    if str(state.get("FinishedAt") or "").startswith("0001-"):
        return None
    code = state.get("ExitCode")
    return int(code) if code is not None else None


def stop_grace_of(attrs: dict[str, Any], default: int) -> int:
    """The grace a replica was created with (its label), or `default` for one made without it."""
    value = labels_of(attrs).get(LABEL_STOP_GRACE)
    return int(value) if value is not None and value.isdigit() else default
