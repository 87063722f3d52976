"""The pool activities a decommission that is undone runs, against the database (both backends): the node
uncordoned (a DRAINING one takes replicas again), the guest READY with the failure counted, and the pool's
next plan holding that guest back (workflows/pool_guests.py, core/pools.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.pools import PoolActivities, PoolNodeUpdate
from core.db import Database
from core.models import Node, NodePool, PoolNode
from core.pools import PoolNodeState, PoolPolicy, plan_pool
from core.proxmox.spec import GuestKind, NodePoolSpec
from core.settings import load_settings
from domain.temporal import TemporalConnection

SPEC = NodePoolSpec(name="web", kind=GuestKind.LXC, template_vmid=9000, min_size=0, max_size=5)


async def seed(database: Database, node_state: str) -> None:
    async with database.transaction() as session:
        session.add(
            NodePool(
                id="pool_undo",
                name="web",
                spec=SPEC.model_dump(mode="json"),
                min_size=0,
                max_size=5,
                size=1,
                workflow_id="pool/pool_undo",
            )
        )
        await session.flush()
        for node_id in ("node_old", "node_new"):
            session.add(
                Node(
                    id=node_id,
                    name=f"dy-{node_id}",
                    address="127.0.2.1:7801",
                    state=node_state,
                    certificate="-",
                    cert_serial=f"serial-{node_id}",
                    cert_not_after=datetime.now(UTC) + timedelta(days=30),
                )
            )
        await session.flush()
        for age, node_id in ((900, "node_old"), (100, "node_new")):
            session.add(
                PoolNode(
                    node_id=node_id,
                    pool_id="pool_undo",
                    state=PoolNodeState.READY.value,
                    kind="lxc",
                    workflow_id=f"provision/{node_id}",
                    created_at=datetime.now(UTC) - timedelta(seconds=age),
                    ready_at=datetime.now(UTC) - timedelta(seconds=age - 30),
                )
            )


async def test_an_undone_decommission_uncordons_the_node_and_the_pool_holds_the_guest_back(
    database: Database, tmp_path: Path
) -> None:
    await seed(database, node_state="DRAINING")
    settings = load_settings(database_url=database.url, state_dir=tmp_path)
    activities = PoolActivities(database, settings, TemporalConnection(settings))
    env = ActivityEnvironment()

    assert await env.run(activities.uncordon_node, "node_new") == "READY"
    assert await env.run(activities.uncordon_node, "node_new") == "READY"  # idempotent
    assert (await env.run(activities.uncordon_node, "node_gone")).startswith("skipped")
    undone = PoolNodeUpdate(
        node_id="node_new",
        state=PoolNodeState.READY,
        message="decommission failed at step drain: …",
        decommission_undone=True,
    )
    await env.run(activities.update_pool_node, undone)
    snapshot = await env.run(activities.load_pool, "pool_undo")

    async with database.session() as session:
        node = await session.get(Node, "node_new")
        row = await session.get(PoolNode, "node_new")
    assert node is not None and node.state == "READY"
    assert row is not None and row.state == "READY" and row.decommission_failures == 1
    assert row.message == "decommission failed at step drain: …" and row.decommission_failed_at is not None
    (new,) = [n for n in snapshot.view.nodes if n.node_id == "node_new"]
    assert new.decommission_failures == 1 and new.decommission_failed_at is not None
    # Two guests for a size of 1: the newest would go, but its decommission was just undone.
    plan = plan_pool(snapshot.view, datetime.now(UTC), PoolPolicy(retry_after_failure_seconds=60))
    assert plan.decommission == ["node_old"]
    assert "node_new: its decommission was undone" in plan.reason
