"""probe_nodes over the real database: a node whose agent does not answer goes DOWN once silent for
longer than the limit (not before), and READY again when it answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from temporalio.testing import ActivityEnvironment

from activities.fleet import FleetActivities
from core.db import Database
from core.models import Node
from core.settings import load_settings
from tests.integration.test_placement import add_node
from tests.support.registry import free_port


async def test_a_silent_node_goes_down_only_after_the_limit(database: Database, tmp_path: Path) -> None:
    settings = load_settings(database_url=database.url, state_dir=tmp_path, node_down_after_seconds=10)
    fresh = await add_node(database, "fresh")
    stale = await add_node(database, "stale")
    cordoned = await add_node(database, "cordoned", state="CORDONED")
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens: the agent does not answer
    async with database.transaction() as session:
        await session.execute(update(Node).values(address=nobody))
        recently, long_ago = (
            datetime.now(UTC) - timedelta(seconds=2),
            datetime.now(UTC) - timedelta(minutes=5),
        )
        await session.execute(update(Node).where(Node.id == fresh).values(last_heartbeat_at=recently))
        await session.execute(
            update(Node).where(Node.id.in_([stale, cordoned])).values(last_heartbeat_at=long_ago)
        )

    down = await ActivityEnvironment().run(FleetActivities(database, settings).probe_nodes)

    assert sorted(down) == sorted([stale, cordoned])
    async with database.session() as session:
        states = {node_id: (await session.get(Node, node_id)).state for node_id in (fresh, stale, cordoned)}  # type: ignore[union-attr]
    assert states == {fresh: "READY", stale: "DOWN", cordoned: "DOWN"}
    assert await ActivityEnvironment().run(FleetActivities(database, settings).probe_nodes) == []  # once
