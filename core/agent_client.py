"""HTTP client of one node agent: mutual TLS with an enrolled node (`AgentTLS`), or the bearer token
of the local `dockyard up` agent.

With mutual TLS the control plane presents its certificate (dockyard://control-plane) and checks the
agent's before a single byte of a request is sent (core/mtls.py): the chain to Dockyard's CA, the node
identity that was meant (dockyard://node/<id>), and no revoked serial.
"""

from __future__ import annotations

import json
import math
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from core import mtls, pki
from core.contracts import Heartbeat, LogLine, LogNotice, NodeInfo, ReplicaLog, ReplicaSpec, ReplicaStatus
from core.settings import Settings


class AgentCallError(Exception):
    """An agent answered with an error: which node, which step, why."""

    def __init__(self, node: str, step: str, reason: str, status_code: int | None = None) -> None:
        super().__init__(f"node {node}: {step} failed: {reason}")
        self.node = node
        self.step = step
        self.reason = reason
        self.status_code = status_code

    @property
    def is_client_error(self) -> bool:
        return self.status_code is not None and 400 <= self.status_code < 500


@dataclass(frozen=True)
class AgentTLS:
    """Mutual TLS towards one node: the control plane's certificate and key, Dockyard's CA, the node
    expected, and the serials to refuse (the revoked ones, read by the caller from the database for
    each client: a node removed a moment ago is refused on the next call)."""

    node_id: str
    ca_file: Path
    certificate_file: Path
    key_file: Path
    revoked_serials: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def from_pki_dir(cls, pki_dir: Path, node_id: str, revoked_serials: Iterable[int] = ()) -> AgentTLS:
        files = pki.ControlPlaneFiles(pki_dir)
        return cls(node_id, files.ca_certificate, files.certificate, files.key, frozenset(revoked_serials))

    def ssl_context(self) -> ssl.SSLContext:
        try:
            return mtls.client_context(
                self.ca_file,
                self.certificate_file,
                self.key_file,
                pki.node_identity(self.node_id),
                self.revoked_serials,
            )
        except (OSError, ssl.SSLError) as exc:
            raise AgentCallError(
                self.node_id,
                "tls",
                f"the control plane's certificate cannot be loaded ({exc}); the API creates it in its "
                "state directory (pki/) when it starts",
            ) from None


def client_for(
    settings: Settings, node_id: str | None, address: str | None, revoked_serials: Iterable[int] = ()
) -> AgentClient:
    """The client of an enrolled node (mutual TLS, at the address it enrolled with), or with no node id,
    of the local `dockyard up` agent (its bearer token)."""
    if node_id is None:
        token = settings.agent_token.get_secret_value() if settings.agent_token else None
        return AgentClient(settings.agent_url, token)
    if address is None:
        raise AgentCallError(node_id, "connect", f"node {node_id} has no agent address")
    return AgentClient.for_node(address, AgentTLS.from_pki_dir(settings.pki_dir, node_id, revoked_serials))


class AgentClient:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        node: str | None = None,
        timeout: float = 120,
        tls: AgentTLS | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.node = node or (tls.node_id if tls else "local")
        verify: ssl.SSLContext | bool = tls.ssl_context() if tls else True
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, verify=verify)

    @classmethod
    def for_node(cls, address: str, tls: AgentTLS, *, timeout: float = 120) -> AgentClient:
        """The client of an enrolled node, at the `host:port` it enrolled with."""
        return cls(f"https://{address}", None, timeout=timeout, tls=tls)

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def ensure_replica(self, spec: ReplicaSpec) -> ReplicaStatus:
        body = await self._call("ensure", "PUT", f"/v1/replicas/{spec.replica_id}", json=spec.model_dump())
        return ReplicaStatus.model_validate(body)

    async def replica(self, replica_id: str) -> ReplicaStatus | None:
        try:
            body = await self._call("inspect", "GET", f"/v1/replicas/{replica_id}")
        except AgentCallError as exc:
            if exc.status_code == 404:
                return None
            raise
        return ReplicaStatus.model_validate(body)

    async def start_replica(self, replica_id: str) -> ReplicaStatus:
        return ReplicaStatus.model_validate(
            await self._call("start", "POST", f"/v1/replicas/{replica_id}/start")
        )

    async def replica_logs(self, replica_id: str, tail: int) -> list[str]:
        """The last lines the replica wrote; none when the agent cannot say (a log tail is a courtesy)."""
        try:
            body = await self._call("logs", "GET", f"/v1/replicas/{replica_id}/logs", params={"tail": tail})
        except AgentCallError:
            return []
        return ReplicaLog.model_validate(body).lines

    async def replicas(self, **filters: str) -> list[ReplicaStatus]:
        body = await self._call("list", "GET", "/v1/replicas", params=filters)
        return [ReplicaStatus.model_validate(item) for item in body]

    async def remove_replica(self, replica_id: str, grace_seconds: float | None = None) -> None:
        """Stop and remove; with no grace, the replica's own (its service's draining seconds)."""
        params = {} if grace_seconds is None else {"grace_seconds": math.ceil(grace_seconds)}
        await self._call("remove", "DELETE", f"/v1/replicas/{replica_id}", params=params)

    async def logs(
        self, params: dict[str, str | int], follow: bool = False
    ) -> AsyncIterator[LogLine | LogNotice]:
        """A service's logs on the node (`GET /v1/logs`), as the agent streams them; with `follow`, until
        the caller stops reading (closing this iterator closes the stream)."""
        timeout = httpx.Timeout(30.0, read=None) if follow else httpx.Timeout(60.0)
        query = {**params, "follow": "true" if follow else "false"}
        try:
            async with self._http.stream("GET", "/v1/logs", params=query, timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    step, reason = _error_detail("logs", response)
                    raise AgentCallError(self.node, step, reason, status_code=response.status_code)
                async for text in response.aiter_lines():
                    if not text:
                        continue  # the agent's keepalive
                    data = json.loads(text)
                    yield LogNotice.model_validate(data) if "kind" in data else LogLine.model_validate(data)
        except httpx.TransportError as exc:
            if (tls_error := _tls_error(exc)) is not None:
                raise AgentCallError(self.node, "tls", tls_error) from None
            raise AgentCallError(
                self.node, "logs", f"agent unreachable at {self._http.base_url}: {exc!r}"
            ) from None
        except ValueError as exc:
            raise AgentCallError(
                self.node, "logs", f"the agent sent a line that is not a log line: {exc}"
            ) from None

    async def heartbeat(self) -> Heartbeat:
        return Heartbeat.model_validate(await self._call("heartbeat", "GET", "/v1/heartbeat"))

    async def node_info(self) -> NodeInfo:
        return NodeInfo.model_validate(await self._call("node", "GET", "/v1/node"))

    async def _call(self, step: str, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if (tls_error := _tls_error(exc)) is not None:
                raise AgentCallError(self.node, "tls", tls_error) from None
            raise AgentCallError(
                self.node, step, f"agent unreachable at {self._http.base_url}: {exc!r}"
            ) from None
        if response.status_code >= 400:
            raise AgentCallError(self.node, *_error_detail(step, response), status_code=response.status_code)
        return response.json() if response.content else None


def _tls_error(exc: BaseException) -> str | None:
    """Why TLS with the agent failed, when that is why the call failed."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, mtls.PeerIdentityRejected):
        return f"the agent was refused: {cause}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"the agent's certificate was refused: {cause.verify_message or cause}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS with the agent failed: {cause.reason or cause}"
    return None


def _error_detail(step: str, response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return step, f"HTTP {response.status_code}: {response.text[:500]}"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict) and "reason" in detail:
        return str(detail.get("step") or step), str(detail["reason"])
    return step, f"HTTP {response.status_code}: {detail}"
