"""The one executor: the local Docker Engine through the docker SDK.

Every method blocks (call it from a worker thread), speaks plain data (inspect dicts) and raises only
the `DockerError` family, so the rest of the agent never sees the SDK and a fake can stand in for it.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.constants import MINIMUM_DOCKER_API_VERSION

from agent import containers

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_STOP_TIMEOUT_SECONDS = 10  # Docker's own, for a container created without one
LOG_LINE_LIMIT = 500  # characters kept of one log line (a minified bundle echoed by an app)


class DockerError(Exception):
    """Docker refused or failed a call; `reason` is the engine's own explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DockerUnavailable(DockerError):
    """The engine cannot be reached at all."""


class Conflict(DockerError):
    """HTTP 409: e.g. a container with that name already exists."""


class PullFailed(DockerError):
    """The engine could not pull the image; `reason` is the registry's message."""


class Refused(DockerError):
    """HTTP 4xx (other than 404 and 409): the engine will never accept this request as it stands, e.g.
    "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available". Retrying cannot help."""


class Runtime(Protocol):
    def inspect(self, name: str) -> dict[str, Any] | None: ...
    def has_image(self, ref: str) -> bool: ...
    def pull(self, ref: str, auth: dict[str, str] | None) -> None: ...
    def create(self, kwargs: dict[str, Any]) -> dict[str, Any]: ...
    def start(self, name: str) -> None: ...
    def list(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]: ...
    def stop(self, name: str, grace_seconds: int | None) -> None: ...
    def remove(self, name: str, grace_seconds: int | None) -> None: ...
    def logs(self, name: str, tail: int) -> tuple[str, ...]: ...
    def stats(self, name: str) -> dict[str, Any]: ...
    def sizes(self) -> dict[str, int]: ...
    def version(self) -> str: ...
    def close(self) -> None: ...


def _translated(method: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except docker.errors.APIError as exc:
            reason = str(exc.explanation or exc)
            raise _error_class(exc.status_code)(reason) from None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerUnavailable(f"docker engine unreachable: {exc}") from None

    return call


def _error_class(status_code: int | None) -> type[DockerError]:
    if status_code == 409:
        return Conflict
    if status_code is not None and 400 <= status_code < 500:
        return Refused
    return DockerError


class DockerRuntime:
    """Docker Engine at `docker_host` (unix:///var/run/docker.sock, tcp://...). Connects on first use, so
    the agent starts (and answers /healthz) while the engine is still booting."""

    def __init__(self, docker_host: str, timeout_seconds: int = 60) -> None:
        self.docker_host = docker_host
        self._timeout = timeout_seconds
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                version = self._server_api_version()
                self._client = docker.DockerClient(
                    base_url=self.docker_host, version=version, timeout=self._timeout
                )
            return self._client

    def _server_api_version(self) -> str:
        # What DockerClient(version="auto") does, except that it leaks its socket when the engine is
        # down; here the probing client is always closed.
        if self.docker_host.startswith("unix://"):
            _check_unix_socket(self.docker_host.removeprefix("unix://"))
        probe = docker.APIClient(
            base_url=self.docker_host, version=MINIMUM_DOCKER_API_VERSION, timeout=self._timeout
        )
        try:
            return str(probe.version(api_version=False)["ApiVersion"])
        finally:
            probe.close()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @_translated
    def inspect(self, name: str) -> dict[str, Any] | None:
        try:
            return self.client.api.inspect_container(name)
        except docker.errors.NotFound:
            return None

    @_translated
    def has_image(self, ref: str) -> bool:
        try:
            self.client.api.inspect_image(ref)
        except docker.errors.NotFound:
            return False
        return True

    @_translated
    def pull(self, ref: str, auth: dict[str, str] | None) -> None:
        password = (auth or {}).get("password")
        try:
            # The stream reports registry errors as {"error": ...} lines after a 200, not as HTTP errors.
            for line in self.client.api.pull(ref, stream=True, decode=True, auth_config=auth):
                if "error" in line:
                    message = (line.get("errorDetail") or {}).get("message") or line["error"]
                    raise PullFailed(_scrub(message, password))
        except docker.errors.APIError as exc:
            raise PullFailed(_scrub(str(exc.explanation or exc), password)) from None
        if not self.has_image(ref):
            raise PullFailed("the engine reported success but the image is not present")

    @_translated
    def create(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return self.client.containers.create(**kwargs).attrs

    @_translated
    def start(self, name: str) -> None:
        self.client.api.start(name)

    @_translated
    def list(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        containers = self.client.containers.list(all=True, filters=filters, ignore_removed=True)
        return [container.attrs for container in containers]

    @_translated
    def stop(self, name: str, grace_seconds: int | None) -> None:
        """SIGTERM, SIGKILL after `grace_seconds` (None: the replica's own, from its label). A missing
        container is already stopped."""
        try:
            if grace_seconds is None:
                attrs = self.client.api.inspect_container(name)
                grace_seconds = containers.stop_grace_of(attrs, DEFAULT_STOP_TIMEOUT_SECONDS)
            self.client.api.stop(name, timeout=grace_seconds)
        except docker.errors.NotFound:
            return

    @_translated
    def remove(self, name: str, grace_seconds: int | None) -> None:
        """SIGTERM, SIGKILL after `grace_seconds` (None: the replica's own, from its label), then remove.
        A missing container is already removed."""
        try:
            if grace_seconds is None:
                attrs = self.client.api.inspect_container(name)
                grace_seconds = containers.stop_grace_of(attrs, DEFAULT_STOP_TIMEOUT_SECONDS)
            self.client.api.stop(name, timeout=grace_seconds)
            self.client.api.remove_container(name, force=True)
        except docker.errors.NotFound:
            return

    @_translated
    def logs(self, name: str, tail: int) -> tuple[str, ...]:
        """The last `tail` lines the container wrote (stdout and stderr, as Docker interleaved them),
        each cut to LOG_LINE_LIMIT characters; none for a missing container."""
        try:
            raw = self.client.api.logs(name, stdout=True, stderr=True, tail=tail, timestamps=False)
        except docker.errors.NotFound:
            return ()
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return tuple(line[:LOG_LINE_LIMIT] for line in text.splitlines()[-tail:])

    @_translated
    def stats(self, name: str) -> dict[str, Any]:
        """The container's resource usage now, in one read (Docker's one-shot stats: no second sample)."""
        stats: dict[str, Any] = self.client.api.stats(name, stream=False, one_shot=True)
        return stats

    @_translated
    def sizes(self) -> dict[str, int]:
        """Bytes each managed container's writable layer uses, by container id (slow: Docker walks them)."""
        listed = self.client.api.containers(all=True, size=True, filters=containers.managed_filters())
        return {item["Id"]: int(item.get("SizeRw") or 0) for item in listed}

    @_translated
    def version(self) -> str:
        return str(self.client.version().get("Version", "unknown"))


def _check_unix_socket(path: str) -> None:
    """Fail cleanly when nothing listens on the engine's socket: the SDK's unix transport leaks the
    socket object of a failed connect (an unclosed-socket ResourceWarning on every call)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(path)
        except OSError as exc:
            raise DockerUnavailable(
                f"docker engine unreachable at unix://{path}: {exc.strerror or exc}"
            ) from None


def _scrub(message: str, secret: str | None) -> str:
    return message.replace(secret, "***") if secret else message
