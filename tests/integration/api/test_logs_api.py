"""The runtime logs route over the real API (both databases), without agents: what a reader asks is checked
parameter by parameter, and a node whose agent cannot be read is a notice naming it, never an error.
(Lines from real agents, merged across nodes and followed: tests/e2e/test_logs.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.db import Database
from core.models import Deployment, Environment, Node, Replica, utcnow
from tests.support.api import api_settings, running_api
from tests.support.components import TemporalDevServer
from tests.support.registry import free_port


@pytest.fixture
async def api(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer
) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings(database, tmp_path, temporal_server.address)
    # The local agent of this "installation" is nowhere: a port nothing listens on.
    settings = settings.model_copy(update={"agent_url": f"http://127.0.0.1:{free_port()}"})
    async with running_api(settings) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def a_service(api: httpx.AsyncClient, name: str) -> dict[str, Any]:
    project = ok(await api.post("/v1/projects", json={"name": name}), 201)
    service: dict[str, Any] = ok(
        await api.post(
            f"/v1/projects/{project['id']}/services", json={"name": "web", "image": "127.0.0.1:5000/a:1"}
        ),
        201,
    )
    return service


async def placed(database: Database, service: dict[str, Any], nodes: list[str]) -> None:
    """A deployment of the service in production with one replica on each of `nodes` ("local" or a new
    enrolled node of that name, at an address nothing answers)."""
    async with database.session() as session, session.begin():
        environment = await session.scalar(
            select(Environment).where(
                Environment.project_id == service["project_id"], Environment.name == "production"
            )
        )
        assert environment is not None
        deployment = Deployment(
            service_id=service["id"], environment_id=environment.id, status="ACTIVE", workflow_id="deploy/x"
        )
        session.add(deployment)
        await session.flush()
        for index, name in enumerate(nodes):
            node_id = "local"
            if name != "local":
                node = Node(
                    name=name,
                    address=f"127.0.0.1:{free_port()}",
                    certificate="-",
                    cert_serial=f"{index + 1:x}{service['id'][-6:]}",
                    cert_not_after=utcnow() + timedelta(days=1),
                )
                session.add(node)
                await session.flush()
                node_id = node.id
            session.add(
                Replica(
                    id=f"{deployment.id}-{index}", deployment_id=deployment.id, node=node_id, state="running"
                )
            )


async def test_a_service_with_no_replicas_has_no_lines(api: httpx.AsyncClient) -> None:
    service = await a_service(api, "quiet")
    answer = ok(await api.get(f"/v1/services/{service['id']}/logs"))
    assert answer == {"service_id": service["id"], "environment": "production", "lines": [], "notices": []}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "5 minutes"}, "until"),
        ({"since": "5m", "until": "1h"}, "until"),
        ({"search": '"unclosed'}, "search"),
        ({"tail": 0}, "tail"),
        ({"tail": 100_000}, "tail"),
        ({"follow": "true", "until": "5m"}, "until"),
    ],
)
async def test_what_cannot_be_read_is_a_422_naming_the_parameter(
    api: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    service = await a_service(api, f"bad-{field}")
    answer = ok(await api.get(f"/v1/services/{service['id']}/logs", params=params), 422)
    assert field in str(answer), answer


async def test_an_unknown_environment_is_a_404(api: httpx.AsyncClient) -> None:
    service = await a_service(api, "nowhere")
    answer = ok(await api.get(f"/v1/services/{service['id']}/logs", params={"environment": "nope"}), 404)
    assert "nope" in str(answer)


async def test_nodes_that_cannot_be_read_are_notices_naming_them(
    api: httpx.AsyncClient, database: Database
) -> None:
    service = await a_service(api, "unread")
    await placed(database, service, ["local", "edge-1"])

    answer = ok(await api.get(f"/v1/services/{service['id']}/logs", params={"search": "level:error"}))

    assert answer["lines"] == []
    by_node = {notice["node"]: notice for notice in answer["notices"]}
    assert set(by_node) == {"local", "edge-1"}
    assert all(notice["kind"] == "unavailable" for notice in by_node.values())
    assert "unreachable" in by_node["local"]["reason"]
    # The enrolled node is called over mutual TLS, with the control plane's certificate.
    assert "edge-1" in by_node["edge-1"]["reason"]
