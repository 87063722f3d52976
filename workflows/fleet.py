"""FleetWatchWorkflow: the control plane's watch over its nodes, one per installation (`fleet-watch`).

    every few seconds: probe every node → for each node newly DOWN, release again what it ran

It continues as new every few hundred rounds (its history stays small) and, being a workflow, resumes
where it was after any worker or server restart. Workers start it when they start (a running one is
joined).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.fleet import FleetActivities
    from core.contracts import Contract
    from workflows.deploy import QUICK

FLEET_WATCH_ID = "fleet-watch"
ROUNDS_PER_RUN = 300


class FleetWatchInput(Contract):
    probe_interval_seconds: float = 2.0


@workflow.defn
class FleetWatchWorkflow:
    def __init__(self) -> None:
        self._healed: list[str] = []

    @workflow.query
    def healed(self) -> list[str]:
        """The deployments this run started to replace replicas of DOWN nodes."""
        return list(self._healed)

    @workflow.run
    async def run(self, watch: FleetWatchInput) -> None:
        for _ in range(ROUNDS_PER_RUN):
            down: list[str] = await workflow.execute_activity_method(FleetActivities.probe_nodes, **QUICK)
            for node_id in down:
                self._healed += await workflow.execute_activity_method(
                    FleetActivities.heal_node, node_id, **QUICK
                )
            await workflow.sleep(timedelta(seconds=watch.probe_interval_seconds))
        workflow.continue_as_new(watch)
