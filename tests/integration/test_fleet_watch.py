"""Silent nodes over the real database: a node without heartbeats goes DOWN once silent for longer than
the limit (not before), and comes back in the state it had when it reports again. A replica a node's
heartbeat no longer lists is marked missing, unless it was recorded too recently to be in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from temporalio.testing import ActivityEnvironment

from activities.fleet import FleetActivities
from api.gateway import record_heartbeat
from core.contracts import DeploymentStatus, Heartbeat, ReplicaStatus
from core.db import Database
from core.fleet import MISSING_AFTER_SECONDS, missing_replicas_of_active_deployments
from core.models import Node, Replica
from core.settings import load_settings
from domain.temporal import TemporalConnection
from tests.integration.test_database import add_deployment, seed
from tests.integration.test_placement import add_node


async def test_a_silent_node_goes_down_only_after_the_limit(database: Database, tmp_path: Path) -> None:
    settings = load_settings(database_url=database.url, state_dir=tmp_path, node_down_after_seconds=10)
    fresh = await add_node(database, "fresh")
    stale = await add_node(database, "stale")
    cordoned = await add_node(database, "cordoned", state="CORDONED")
    async with database.transaction() as session:
        recently, long_ago = (
            datetime.now(UTC) - timedelta(seconds=2),
            datetime.now(UTC) - timedelta(minutes=5),
        )
        await session.execute(update(Node).where(Node.id == fresh).values(last_heartbeat_at=recently))
        await session.execute(
            update(Node).where(Node.id.in_([stale, cordoned])).values(last_heartbeat_at=long_ago)
        )

    fleet = FleetActivities(database, settings, TemporalConnection(settings))
    down = await ActivityEnvironment().run(fleet.mark_silent_nodes)

    assert sorted(down) == sorted([stale, cordoned])
    async with database.session() as session:
        states = {node_id: (await session.get(Node, node_id)).state for node_id in (fresh, stale, cordoned)}  # type: ignore[union-attr]
    assert states == {fresh: "READY", stale: "DOWN", cordoned: "DOWN"}
    assert await ActivityEnvironment().run(fleet.mark_silent_nodes) == []  # once

    for node_id in (stale, cordoned):  # they report again
        async with database.transaction() as session:
            node = await session.get(Node, node_id)
            assert node is not None
            await record_heartbeat(session, node, HEARTBEAT, datetime.now(UTC))
    async with database.session() as session:
        back = {node_id: (await session.get(Node, node_id)) for node_id in (stale, cordoned)}
    assert {node_id: (node.state, node.state_before_down) for node_id, node in back.items() if node} == {
        stale: ("READY", None),
        cordoned: ("CORDONED", None),
    }
    assert back[stale] is not None and back[stale].capacity["memory_mb"] == 4096


HEARTBEAT = Heartbeat.model_validate(
    {
        "node": {"name": "n", "address": "127.0.0.19:7801", "docker_version": "test"},
        "capacity": {"cpu_millis": 2000, "memory_mb": 4096, "disk_mb": 10_000},
        "usage": {"cpu_millis": 100, "memory_mb": 512, "disk_mb": 1_000},
        "labels": {},
        "replicas": [],
    }
)


async def test_a_replica_the_heartbeat_no_longer_lists_is_missing_once_recorded_long_enough(
    database: Database,
) -> None:
    node_id = await add_node(database, "lister")
    ids = await seed(database, "lister")
    deployment = await add_deployment(database, ids, DeploymentStatus.ACTIVE)
    now = datetime.now(UTC)
    old = now - timedelta(seconds=MISSING_AFTER_SECONDS + 5)
    rows = {
        "kept": ("running", old),  # listed
        "gone": ("running", old),  # not listed: missing
        "gone-exited": ("exited", old),  # not listed either: missing too
        "just-recorded": ("created", now),  # too recent for the heartbeat to know it
        "removed": ("removed", old),  # retired by the control plane: stays so
    }
    async with database.transaction() as session:
        for name, (state, updated_at) in rows.items():
            session.add(
                Replica(
                    id=f"{deployment}-{name}",
                    deployment_id=deployment,
                    node=node_id,
                    state=state,
                    updated_at=updated_at,
                )
            )
    listed = HEARTBEAT.model_copy(
        update={"replicas": [ReplicaStatus(replica_id=f"{deployment}-kept", state="running")]}
    )
    async with database.transaction() as session:
        node = await session.get(Node, node_id)
        assert node is not None
        await record_heartbeat(session, node, listed, now)

    async with database.session() as session:
        states = {
            replica.id.removeprefix(f"{deployment}-"): replica.state
            for replica in await session.scalars(select(Replica).where(Replica.deployment_id == deployment))
        }
        missing = [row[0] for row in await session.execute(missing_replicas_of_active_deployments())]
    assert states == {
        "kept": "running",
        "gone": "missing",
        "gone-exited": "missing",
        "just-recorded": "created",
        "removed": "removed",
    }
    assert sorted(missing) == [f"{deployment}-gone", f"{deployment}-gone-exited"]
