"""Reusable test helpers over real components (Docker Engine, Docker Distribution).

Plain classes and functions, no fixtures: conftest files and test modules wrap them.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import docker
import docker.errors
import pytest

DOCKER_HOST = "unix:///var/run/docker.sock"


def missing_component(reason: str) -> NoReturn:
    """A real component a test needs is absent: fail in CI (CI=true), skip on a developer's machine."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: real components are required, never skipped)", pytrace=False)
    pytest.skip(reason)


def connect_docker(base_url: str = DOCKER_HOST) -> docker.DockerClient:
    """A docker SDK client for a live engine (close it when done), or `missing_component`."""
    if base_url.startswith("unix://"):
        # Checked by hand first: the SDK leaks the socket of a failed unix connect (a ResourceWarning).
        path = base_url.removeprefix("unix://")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(path)
            except OSError as exc:
                missing_component(f"Docker Engine not reachable at {base_url}: {exc.strerror or exc}")
    try:
        client = docker.DockerClient(base_url=base_url)
    except docker.errors.DockerException as exc:
        missing_component(f"Docker Engine not reachable at {base_url}: {exc}")
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        client.close()
        missing_component(f"Docker Engine at {base_url} does not answer: {exc}")
    return client
