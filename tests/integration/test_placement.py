"""place_replicas over the real database: the scheduler fed with the enrolled nodes and the replicas
already running, answering replicas grouped by node (or the local agent when no node is enrolled)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts import NodeRef, PlacementRequest
from activities.nodes import NodeActivities
from core.contracts import DeploymentStatus as S
from core.contracts import PlacementSettings
from core.db import Database
from core.models import Deployment, Node, Replica
from tests.integration.test_database import add_deployment, seed


async def add_node(db: Database, name: str, state: str = "READY", **labels: str) -> str:
    node_id = f"node_{name}"
    async with db.transaction() as session:
        session.add(
            Node(
                id=node_id,
                name=name,
                address=f"127.0.0.{10 + len(name)}:7801",
                state=state,
                labels=labels,
                certificate="-----BEGIN CERTIFICATE-----\n",
                cert_serial=secrets.token_hex(8),
                cert_not_after=datetime.now(UTC) + timedelta(days=30),
            )
        )
    return node_id


def request(
    ids: dict[str, str], deployment_id: str, count: int, placement: PlacementSettings | None = None
) -> PlacementRequest:
    return PlacementRequest(
        deployment_id=deployment_id,
        service_id=ids["service"],
        environment_id=ids["production"],
        replica_ids=[f"{deployment_id}-{i}" for i in range(count)],
        placement=placement or PlacementSettings(),
    )


async def place(db: Database, placement: PlacementRequest) -> dict[str | None, list[str]]:
    result = await ActivityEnvironment().run(NodeActivities(db).place_replicas, placement)
    return {group.node.node_id: group.replica_ids for group in result.groups}


async def test_without_enrolled_nodes_everything_runs_on_the_local_agent(database: Database) -> None:
    ids = await seed(database)
    deployment = await add_deployment(database, ids, S.DEPLOYING)
    result = await ActivityEnvironment().run(
        NodeActivities(database).place_replicas, request(ids, deployment, 2)
    )
    assert [(g.node, g.replica_ids) for g in result.groups] == [
        (NodeRef(), [f"{deployment}-0", f"{deployment}-1"])
    ]


async def test_replicas_spread_over_ready_nodes_with_their_addresses(database: Database) -> None:
    ids = await seed(database)
    for name in ("a", "b", "c"):
        await add_node(database, name)
    await add_node(database, "cordoned", state="CORDONED")
    deployment = await add_deployment(database, ids, S.DEPLOYING)

    result = await ActivityEnvironment().run(
        NodeActivities(database).place_replicas, request(ids, deployment, 6)
    )

    assert {g.node.node_id: len(g.replica_ids) for g in result.groups} == {
        "node_a": 2,
        "node_b": 2,
        "node_c": 2,
    }
    assert {g.node.address for g in result.groups} == {"127.0.0.11:7801"}  # names of one letter
    assert sorted(r for g in result.groups for r in g.replica_ids) == [f"{deployment}-{i}" for i in range(6)]


async def test_new_replicas_go_where_fewer_of_the_service_run(database: Database) -> None:
    ids = await seed(database)
    for name in ("a", "b", "c"):
        await add_node(database, name)
    older = await add_deployment(database, ids, S.ACTIVE)
    async with database.transaction() as session:
        session.add_all(
            [
                Replica(id=f"{older}-0", deployment_id=older, node="node_a", state="running"),
                Replica(id=f"{older}-1", deployment_id=older, node="node_b", state="running"),
                Replica(id=f"{older}-2", deployment_id=older, node="node_c", state="removed"),
            ]
        )
    deployment = await add_deployment(database, ids, S.DEPLOYING)
    assert await place(database, request(ids, deployment, 1)) == {"node_c": [f"{deployment}-0"]}


async def test_no_ready_node_fails_naming_each_nodes_reason(database: Database) -> None:
    ids = await seed(database)
    await add_node(database, "a", state="CORDONED")
    await add_node(database, "b", state="DOWN")
    deployment = await add_deployment(database, ids, S.DEPLOYING)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(NodeActivities(database).place_replicas, request(ids, deployment, 1))
    assert raised.value.type == "Unschedulable" and raised.value.non_retryable
    assert raised.value.message == (
        f"replica {deployment}-0 fits on no node (a: node is CORDONED; b: node is DOWN)"
    )


async def add_capacity(db: Database, node_id: str, cpu_millis: int, memory_mb: int) -> None:
    async with db.transaction() as session:
        node = await session.get(Node, node_id)
        assert node is not None
        node.capacity = {"cpu_millis": cpu_millis, "memory_mb": memory_mb, "disk_mb": 10_000}


async def test_constraints_strategy_and_reservations_of_running_replicas(database: Database) -> None:
    """Replicas already running reserve what their deployment's snapshot asked; constraints filter the
    nodes; binpack fills the fullest node that fits."""
    ids = await seed(database)
    for name, zone in (("a", "x"), ("b", "x"), ("c", "y")):
        await add_capacity(
            database, await add_node(database, name, zone=zone), cpu_millis=2000, memory_mb=1024
        )
    other = await add_deployment(database, ids, S.ACTIVE)
    async with database.transaction() as session:
        deployment = await session.get(Deployment, other)
        assert deployment is not None
        deployment.config = {"cpu_millis": 500, "memory_mb": 512}
        session.add(Replica(id=f"{other}-0", deployment_id=other, node="node_b", state="running"))
    deployment = await add_deployment(database, ids, S.DEPLOYING)

    binpack = PlacementSettings(memory_mb=256, constraints=["zone=x"], strategy="binpack")
    assert await place(database, request(ids, deployment, 2, binpack)) == {
        "node_b": [f"{deployment}-0", f"{deployment}-1"]  # 512 + 2 x 256 = 1024: b is full
    }
    spread = PlacementSettings(memory_mb=600, constraints=["zone!=y"])
    with pytest.raises(ApplicationError) as raised:
        await place(database, request(ids, deployment, 2, spread))
    assert raised.value.message == (
        f"replica {deployment}-1 fits on no node (a: needs 600 MiB memory, 424 MiB free; "
        "b: needs 600 MiB memory, 512 MiB free; c: constraint zone!=y: node has zone=y)"
    )
