"""The simulator: one request from raw HTTP to PVE's answer, in pveproxy's order.

    find the handler (501) -> authenticate (401) -> verify parameters (400) -> check permissions (403)
    -> the target node is up (595) -> quorum for writes (500) -> the handler (200 or its failure)

Every /api2 request is recorded with its verdict (`GET /_sim/requests`): `ok`, `rejected` (the schema
refused it: Dockyard sent something PVE would refuse), `failed` (the handler refused it, as PVE would),
`unauthorized`, `forbidden`, `unreachable`, `not-implemented` (PVE has no such method) or
`outside-subset` (PVE has it, the simulator does not).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.proxmox.sim import api_agent, api_cluster, api_guests  # noqa: F401  (they register routes)
from infra.proxmox.sim.auth import Authenticator, Principal, check_permissions
from infra.proxmox.sim.base import ROUTES, Context, PveError, no_quorum
from infra.proxmox.sim.cluster import Cluster
from infra.proxmox.sim.faults import Faults
from infra.proxmox.sim.guests import GuestAgents
from infra.proxmox.sim.schema import Schema, validate
from infra.proxmox.sim.tasks import Tasks

API_PREFIX = "/api2/json"
WORLD = {("GET", "/access/ticket"), ("POST", "/access/ticket")}
SECRET_PARAMS = {"password", "cipassword", "content"}


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes
    content_type: str = "application/json;charset=UTF-8"
    cookie: str | None = None


@dataclass(frozen=True)
class Timing:
    """Task durations in seconds at speed 1 (divided by `--task-speed`)."""

    linked_clone: float = 1.0
    full_clone: float = 4.0
    start: float = 1.0
    stop: float = 0.5
    shutdown: float = 1.5
    destroy: float = 0.5
    create: float = 2.0
    resize: float = 0.5
    qemu_boot: float = 2.0  # from `status/start` done until the guest agent answers


class Simulator:
    def __init__(
        self,
        cluster: Cluster,
        schema: Schema,
        agents: GuestAgents,
        speed: float = 1.0,
        hidden_task_seconds: float = 0.1,
        timing: Timing | None = None,
    ) -> None:
        self.cluster = cluster
        self.faults: Faults = cluster.faults
        self.schema = schema
        self.agents = agents
        self.speed = speed
        self.timing = timing or Timing()
        self.auth = Authenticator(cluster.users, cluster.tokens)
        self.tasks = Tasks(lambda kind: self.faults.slowdown(kind) / self.speed, hidden_task_seconds)
        self.requests: list[dict[str, Any]] = []
        self._sequence = itertools.count(1)
        self._record_lock = threading.Lock()

    def seconds(self, base: float) -> float:
        return base / self.speed

    # --- one request --------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        url = urlsplit(target)
        if url.path.startswith("/_sim/"):
            from infra.proxmox.sim.control import handle_control

            return handle_control(self, method, url.path, url.query, headers, body)
        path = "/".join(unquote(part) for part in url.path.split("/")).rstrip("/") or "/"
        record: dict[str, Any] = {"method": method, "path": path.removeprefix(API_PREFIX), "template": None}
        try:
            params = _parameters(url.query, headers, body)
            record["params"] = {k: "********" if k in SECRET_PARAMS else v for k, v in params.items()}
            data, cookie = self._api(method, path, params, headers, record)
            response = _json(200, "OK", {"data": data}, cookie)
            record["verdict"] = "ok"
        except PveError as error:
            response = _error(error)
            record.setdefault("verdict", _verdict(error))
            record["errors"] = error.errors
        except Exception as exc:  # never a hung request: a bug of the simulator is a 500 naming it
            response = _error(PveError(500, f"simulator error: {exc!r}"))
            record["verdict"] = "failed"
        record |= {"status": response.status, "reason": response.reason}
        self._record(record)
        return response

    def _api(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str], record: dict[str, Any]
    ) -> tuple[Any, str | None]:
        if not path.startswith(API_PREFIX + "/"):
            raise PveError(501, f"Method '{method} {path}' not implemented")
        relative = path.removeprefix(API_PREFIX)
        matched = self.schema.match(method, relative)
        if matched is None:
            known = self.schema.in_full_api(method, relative)
            record["verdict"] = "outside-subset" if known else "not-implemented"
            raise PveError(501, f"Method '{method} {relative}' not implemented")
        endpoint, path_params = matched
        record["template"] = endpoint.path
        principal = None
        if (method, endpoint.path) not in WORLD:
            principal = self.auth.authenticate(method, headers)
        typed = validate(endpoint, {**params, **path_params})
        if principal is not None:
            check_permissions(principal, endpoint.permissions, typed)
        if endpoint.proxyto_node:
            self._check_node(str(typed["node"]))
        if method != "GET" and (method, endpoint.path) not in WORLD and self.faults.no_quorum:
            raise no_quorum()
        context = Context(self, principal.user if principal else "", typed)
        data = ROUTES[(method, endpoint.path)](context)
        cookie = None
        if endpoint.path == "/access/ticket" and method == "POST":
            cookie = f"PVEAuthCookie={data['ticket']}; path=/; secure; SameSite=Lax"
        return data, cookie

    def _check_node(self, node: str) -> None:
        if node not in self.cluster.nodes:
            raise PveError(
                500,
                f"hostname lookup '{node}' failed - failed to get address info for: {node}: "
                "Name or service not known",
            )
        if node in self.faults.offline_nodes:
            raise PveError(595, "No route to host")

    def _record(self, record: dict[str, Any]) -> None:
        with self._record_lock:
            record = {"seq": next(self._sequence), "time": time.time(), **record}
            self.requests.append(record)

    def principal_for_control(self, headers: dict[str, str]) -> Principal:
        return self.auth.authenticate("GET", headers)


def _parameters(query: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Query and body merged, as pveproxy merges them; a key given twice becomes a list."""
    pairs = parse_qsl(query, keep_blank_values=True)
    params: dict[str, Any] = {}
    content_type = headers.get("content-type", "")
    if body and content_type.startswith("application/json"):
        try:
            decoded = json.loads(body)
        except ValueError:
            raise PveError(400, "JSON decode error") from None
        if not isinstance(decoded, dict):
            raise PveError(400, "JSON body is not an object")
        params.update(decoded)
    elif body:
        pairs += parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
    for key, value in pairs:
        if key in params:
            previous = params[key]
            params[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            params[key] = value
    return params


def _verdict(error: PveError) -> str:
    if error.by_schema:
        return "rejected"
    return {401: "unauthorized", 403: "forbidden", 501: "not-implemented", 595: "unreachable"}.get(
        error.status, "failed"
    )


def _json(status: int, reason: str, payload: Any, cookie: str | None = None) -> Response:
    return Response(status, reason, json.dumps(payload).encode(), cookie=cookie)


def _error(error: PveError) -> Response:
    reason = " ".join(error.message.split("\n")).strip() or "error"
    reason = reason.encode("latin-1", "replace").decode("latin-1")
    if error.status == 401:
        return Response(401, reason, b"", content_type="text/plain")
    if error.errors is not None:
        return _json(error.status, reason, {"data": None, "errors": error.errors})
    return _json(error.status, reason, {"data": None, "message": f"{error.message}\n"})
