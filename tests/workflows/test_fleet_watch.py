"""FleetWatchWorkflow on a real Temporal server with fake activities: every round looks for silent nodes;
each node reported newly DOWN is healed once; every round routes follow the replicas and missing
replicas are replaced (a round whose follow or replacement fails is skipped, the watch carries on);
every RECONCILE_EVERY rounds the unowned replicas are removed; the watch continues as new with its
settings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from workflows.fleet import RECONCILE_EVERY, FleetWatchInput, FleetWatchWorkflow
from workflows.worker import WORKFLOWS

pytestmark = pytest.mark.timeout(60)


class FakeFleet:
    def __init__(self) -> None:
        self.rounds = 0
        self.healed: list[str] = []
        self.down_in_round = {2: ["node_b"], 4: ["node_a", "node_c"]}
        self.round_reached = asyncio.Event()
        self.reconciled_in_rounds: list[int] = []

    @activity.defn(name="probe_nodes")
    async def probe_nodes(self) -> list[str]:
        self.rounds += 1
        if self.rounds >= RECONCILE_EVERY + 2:
            self.round_reached.set()
        return self.down_in_round.get(self.rounds, [])

    @activity.defn(name="remove_unowned_replicas")
    async def remove_unowned_replicas(self) -> list[str]:
        self.reconciled_in_rounds.append(self.rounds)
        return [f"dep-old-{self.rounds}"]

    @activity.defn(name="follow_replicas")
    async def follow_replicas(self) -> list[str]:
        if self.rounds == 3:
            raise RuntimeError("database away")
        return [f"round {self.rounds}: republished"] if self.rounds in (1, 5) else []

    @activity.defn(name="replace_missing_replicas")
    async def replace_missing_replicas(self) -> list[str]:
        if self.rounds == 4:
            raise RuntimeError("the API is away")
        return ["dep-missing"] if self.rounds in (3, 6) else []

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.probe_nodes,
            self.heal_node,
            self.remove_unowned_replicas,
            self.follow_replicas,
            self.replace_missing_replicas,
        ]

    @activity.defn(name="heal_node")
    async def heal_node(self, node_id: str) -> list[str]:
        self.healed.append(node_id)
        return [f"dep-heal-{node_id}"]


async def test_each_node_that_goes_down_is_healed_once(temporal_client: Client) -> None:
    fleet = FakeFleet()
    task_queue = f"fleet-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=fleet.activities(),
    ):
        handle = await temporal_client.start_workflow(
            FleetWatchWorkflow.run,
            FleetWatchInput(probe_interval_seconds=0.05),
            id=f"fleet-watch-{task_queue}",
            task_queue=task_queue,
        )
        try:
            await asyncio.wait_for(fleet.round_reached.wait(), 30)
            assert fleet.healed == ["node_b", "node_a", "node_c"]
            assert await handle.query(FleetWatchWorkflow.healed) == [
                "dep-heal-node_b",
                "dep-missing",
                "dep-heal-node_a",
                "dep-heal-node_c",
                "dep-missing",
            ]
            assert await handle.query(FleetWatchWorkflow.followed) == [
                "round 1: republished",
                "round 5: republished",
            ]
            assert fleet.reconciled_in_rounds == [RECONCILE_EVERY]
            assert await handle.query(FleetWatchWorkflow.removed) == [f"dep-old-{RECONCILE_EVERY}"]
        finally:
            await handle.terminate("test over")
