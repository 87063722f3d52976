"""FleetWatchWorkflow: the control plane's watch over its nodes, one per installation (`fleet-watch`).

    every few seconds: mark DOWN the nodes without heartbeats → for each, release again what it ran
    every RECONCILE_EVERY rounds: remove, on every node, the replicas no deployment owns any more

It continues as new every few hundred rounds (its history stays small) and, being a workflow, resumes
where it was after any worker or server restart. Workers start it when they start (a running one is
joined).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from activities.fleet import FleetActivities
    from core.contracts import Contract
    from workflows.deploy import QUICK, SLOW

FLEET_WATCH_ID = "fleet-watch"
ROUNDS_PER_RUN = 300
RECONCILE_EVERY = 15  # rounds: every 30 s with the default 2 s interval
RECONCILE_UNOWNED = "reconcile-unowned-replicas"  # workflow.patched: runs begun before it never did


class FleetWatchInput(Contract):
    probe_interval_seconds: float = 2.0


@workflow.defn
class FleetWatchWorkflow:
    def __init__(self) -> None:
        self._healed: list[str] = []
        self._removed: list[str] = []

    @workflow.query
    def healed(self) -> list[str]:
        """The deployments this run started to replace replicas of DOWN nodes."""
        return list(self._healed)

    @workflow.query
    def removed(self) -> list[str]:
        """The unowned replicas this run removed."""
        return list(self._removed)

    @workflow.run
    async def run(self, watch: FleetWatchInput) -> None:
        for round_ in range(ROUNDS_PER_RUN):
            down: list[str] = await workflow.execute_activity_method(
                FleetActivities.mark_silent_nodes, **QUICK
            )
            for node_id in down:
                self._healed += await workflow.execute_activity_method(
                    FleetActivities.heal_node, node_id, **QUICK
                )
            if round_ % RECONCILE_EVERY == RECONCILE_EVERY - 1 and workflow.patched(RECONCILE_UNOWNED):
                self._removed += await workflow.execute_activity_method(
                    AgentActivities.remove_unowned_replicas, **SLOW
                )
            await workflow.sleep(timedelta(seconds=watch.probe_interval_seconds))
        workflow.continue_as_new(watch)
