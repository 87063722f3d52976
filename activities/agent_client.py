"""HTTP client of one node agent. Authentication is pluggable: a bearer token today."""

from __future__ import annotations

import math
from typing import Any

import httpx

from core.contracts import NodeInfo, ReplicaSpec, ReplicaStatus


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


class AgentClient:
    def __init__(
        self, base_url: str, token: str | None, *, node: str = "local", timeout: float = 120
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.node = node
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)

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

    async def replicas(self, **filters: str) -> list[ReplicaStatus]:
        body = await self._call("list", "GET", "/v1/replicas", params=filters)
        return [ReplicaStatus.model_validate(item) for item in body]

    async def remove_replica(self, replica_id: str, grace_seconds: float) -> None:
        await self._call(
            "remove",
            "DELETE",
            f"/v1/replicas/{replica_id}",
            params={"grace_seconds": math.ceil(grace_seconds)},
        )

    async def node_info(self) -> NodeInfo:
        return NodeInfo.model_validate(await self._call("node", "GET", "/v1/node"))

    async def _call(self, step: str, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise AgentCallError(
                self.node, step, f"agent unreachable at {self._http.base_url}: {exc!r}"
            ) from None
        if response.status_code >= 400:
            raise AgentCallError(self.node, *_error_detail(step, response), status_code=response.status_code)
        return response.json() if response.content else None


def _error_detail(step: str, response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return step, f"HTTP {response.status_code}: {response.text[:500]}"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict) and "reason" in detail:
        return str(detail.get("step") or step), str(detail["reason"])
    return step, f"HTTP {response.status_code}: {detail}"
