"""Silent nodes over the real database: a node without heartbeats goes DOWN once silent for longer than
the limit (not before), and comes back in the state it had when it reports again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from temporalio.testing import ActivityEnvironment

from activities.fleet import FleetActivities
from api.gateway import record_heartbeat
from core.contracts import Heartbeat
from core.db import Database
from core.models import Node
from core.settings import load_settings
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

    down = await ActivityEnvironment().run(FleetActivities(database, settings).mark_silent_nodes)

    assert sorted(down) == sorted([stale, cordoned])
    async with database.session() as session:
        states = {node_id: (await session.get(Node, node_id)).state for node_id in (fresh, stale, cordoned)}  # type: ignore[union-attr]
    assert states == {fresh: "READY", stale: "DOWN", cordoned: "DOWN"}
    assert (
        await ActivityEnvironment().run(FleetActivities(database, settings).mark_silent_nodes) == []
    )  # once

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
