"""PveClient: the one executor of Dockyard's PVE requests (core/proxmox/params.py builds them), over plain
proxmoxer. Every failure comes out as a `PveCallError` carrying the classified `PveError`
(core/proxmox/errors.py) that names the call, the PVE node and the vmid.

proxmoxer is synchronous (requests): each call runs in a thread. Its defaults are not used where they hurt:
the HTTP timeout is the settings' (≥ 30 s; PVE waits up to a minute on locks), and tasks are awaited by
`wait_task`, which reads `exitstatus` itself (proxmoxer's `blocking_status` answers None on timeout and does
not raise on a failed task).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.core import AuthenticationError

from core.proxmox import params
from core.proxmox.errors import PveCallError, PveError, PveErrorKind, classify
from core.proxmox.params import PveCall
from core.proxmox.tasks import TaskPhase, TaskState, failure_message, interpret_task_status
from core.proxmox.upid import parse_upid
from core.settings import Settings, SettingsError

# Right after a task is created its UPID may briefly answer 400 "no such task" (the task index is written
# by the worker process a moment later).
NEW_TASK_GRACE_SECONDS = 10.0
POLL_FIRST_SECONDS = 0.2
POLL_MAX_SECONDS = 2.0


class PveClient:
    """Calls the PVE API on the first of `hosts` that answers (any cluster member serves all of it)."""

    def __init__(
        self,
        hosts: list[str],
        *,
        port: int = 8006,
        token_id: str = "",
        token_secret: str = "",
        user: str = "",
        password: str = "",
        verify: bool | str = True,
        timeout: float = 60.0,
    ) -> None:
        if not hosts:
            raise SettingsError("no Proxmox VE host: set DOCKYARD_PROXMOX_HOSTS")
        if not (token_id and token_secret) and not (user and password):
            raise SettingsError(
                "no Proxmox VE credentials: set DOCKYARD_PROXMOX_TOKEN_ID and DOCKYARD_PROXMOX_TOKEN_SECRET "
                "(or DOCKYARD_PROXMOX_USER and DOCKYARD_PROXMOX_PASSWORD)"
            )
        self.hosts = list(hosts)
        self._port = port
        self._token_id, self._token_secret = token_id, token_secret
        self._user, self._password = user, password
        self._verify = verify
        self.timeout = timeout
        self._apis: dict[str, ProxmoxAPI] = {}
        self._current = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> PveClient:
        def secret(value: Any) -> str:
            return value.get_secret_value() if value is not None else ""

        verify: bool | str = settings.proxmox_verify
        if settings.proxmox_verify and settings.proxmox_ca_file is not None:
            verify = str(settings.proxmox_ca_file)
        return cls(
            settings.proxmox_hosts,
            port=settings.proxmox_port,
            token_id=settings.proxmox_token_id,
            token_secret=secret(settings.proxmox_token_secret),
            user=settings.proxmox_user,
            password=secret(settings.proxmox_password),
            verify=verify,
            timeout=settings.proxmox_timeout_seconds,
        )

    async def call(self, call: PveCall, *, action: str = "", vmid: int | None = None) -> Any:
        """Run one request; its `data`. PveCallError when PVE (or the network) says no."""
        return await asyncio.to_thread(self.call_sync, call, action=action, vmid=vmid)

    def call_sync(self, call: PveCall, *, action: str = "", vmid: int | None = None) -> Any:
        node = str(call.path_params["node"]) if "node" in call.path_params else None
        if vmid is None and "vmid" in call.path_params:
            vmid = int(call.path_params["vmid"])

        def failed(status: int | None, reason: str, errors: object = None) -> PveCallError:
            error = classify(
                status, reason, _field_errors(errors), action=action or str(call), node=node, vmid=vmid
            )
            return PveCallError(error)

        unreachable: PveCallError | None = None
        for _ in range(len(self.hosts)):
            host = self.hosts[self._current]
            try:
                return self._send(self._api(host), call)
            except ResourceException as exc:
                raise failed(exc.status_code, str(exc.content), exc.errors) from None
            except AuthenticationError as exc:
                raise failed(401, f"authentication failed on {host}: {exc}") from None
            except requests.exceptions.SSLError as exc:
                # Never retried: a certificate that does not verify will not start to.
                error = failed(None, f"TLS with {host} failed: {_cause(exc)}").error
                raise PveCallError(error.model_copy(update={"kind": PveErrorKind.PERMANENT})) from None
            except requests.exceptions.ConnectionError as exc:
                # Not reached: try the next member. A read timeout is not retried here (the request may
                # have been applied); the activity's retry looks before it acts again.
                unreachable = failed(None, f"cannot reach {host}: {_cause(exc)}")
                with self._lock:
                    self._apis.pop(host, None)
                    self._current = (self._current + 1) % len(self.hosts)
            except requests.exceptions.RequestException as exc:
                raise failed(None, f"{host}: {_cause(exc)}") from None
        assert unreachable is not None
        raise unreachable

    def _api(self, host: str) -> ProxmoxAPI:
        with self._lock:
            api = self._apis.get(host)
            if api is None:
                auth: dict[str, Any]
                if self._token_id and self._token_secret:
                    user, _, token_name = self._token_id.partition("!")
                    auth = {"user": user, "token_name": token_name, "token_value": self._token_secret}
                else:  # a ticket, fetched now and renewed by proxmoxer
                    auth = {"user": self._user, "password": self._password}
                api = ProxmoxAPI(
                    _with_port(host, self._port), verify_ssl=self._verify, timeout=self.timeout, **auth
                )
                self._apis[host] = api
            return api

    @staticmethod
    def _send(api: ProxmoxAPI, call: PveCall) -> Any:
        resource = api(call.path.lstrip("/"))
        arguments = dict(call.params)
        if call.method == "GET":
            return resource.get(**arguments)
        if call.method == "POST":
            return resource.post(**arguments)
        if call.method == "PUT":
            return resource.put(**arguments)
        return resource.delete(**arguments)

    async def wait_task(
        self,
        upid: str,
        *,
        action: str = "",
        vmid: int | None = None,
        progress: Callable[[TaskState], None] | None = None,
    ) -> TaskState:
        """Poll the task until it stops; its final state, with the log's error line as `message` when it
        failed. PveCallError when PVE cannot say (the activity's retry polls again)."""
        node = parse_upid(upid).node
        action = action or f"task {upid}"
        started = time.monotonic()
        delay = POLL_FIRST_SECONDS
        while True:
            try:
                answer = await self.call(params.task_status(node, upid), action=action, vmid=vmid)
            except PveCallError as exc:
                if not _no_such_task(exc.error) or time.monotonic() - started > NEW_TASK_GRACE_SECONDS:
                    raise
                answer = {"status": "running"}
            state = interpret_task_status(answer)
            if progress is not None:
                progress(state)
            if state.phase is TaskPhase.FAILED:
                return state.model_copy(update={"message": await self._failure(node, upid, state)})
            if state.done:
                return state
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_SECONDS)

    async def _failure(self, node: str, upid: str, state: TaskState) -> str:
        try:
            lines = await self.call(params.task_log(node, upid), action=f"reading the log of {upid}")
        except PveCallError:
            lines = []  # the exit status still says what failed
        return failure_message(state, lines if isinstance(lines, list) else [])


def _no_such_task(error: PveError) -> bool:
    words = " ".join([error.reason, *error.field_errors.values()]).lower()
    return error.status in (400, 404, 500) and "no such task" in words


def _field_errors(errors: object) -> dict[str, str] | None:
    """proxmoxer's `errors`: PVE's per-parameter dict, or `{"errors": b"<body>"}` when the body was not
    JSON (an empty 401), which says nothing."""
    if not isinstance(errors, dict):
        return None
    fields = {str(k): str(v) for k, v in errors.items() if isinstance(v, str)}
    return fields or None


def _with_port(host: str, port: int) -> str:
    if host.startswith("["):
        return host if "]:" in host else f"{host}:{port}"
    if host.count(":") == 1:
        return host
    if host.count(":") > 1:  # a bare IPv6 address
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _cause(exc: BaseException) -> str:
    while exc.__context__ is not None and str(exc.__context__):
        exc = exc.__context__
    return str(exc) or type(exc).__name__
