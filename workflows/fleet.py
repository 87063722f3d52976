"""FleetWatchWorkflow: the control plane's watch over its nodes, one per installation (`fleet-watch`).

    every few seconds: mark DOWN the nodes without heartbeats → for each, redeploy what it ran
                       → routes follow the replicas of ACTIVE deployments (start the stopped ones,
                         publish the addresses they run at now)
                       → redeploy the ACTIVE deployments a replica of which went missing
    every RECONCILE_EVERY rounds: remove, on every node, the replicas no deployment owns any more

It continues as new every few hundred rounds (its history stays small) and, being a workflow, resumes
where it was after any worker or server restart. Workers start it when they start (a running one is
joined).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.steps import reason_of

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from activities.fleet import FleetActivities
    from activities.routing import RoutingActivities
    from core.contracts import Contract
    from workflows.deploy import QUICK, SLOW

ROUNDS_PER_RUN = 300
RECONCILE_EVERY = 15  # rounds: every 30 s with the default 2 s interval
RECONCILE_UNOWNED = "reconcile-unowned-replicas"  # workflow.patched: runs begun before it never did
FOLLOW_REPLICAS = "follow-replicas"  # workflow.patched: likewise
REPLACE_MISSING = "replace-missing-replicas"  # workflow.patched: likewise


# A round's activities take milliseconds. One lost with its worker (a reboot: nobody reports it failed)
# is retried only after its start-to-close timeout, and the watch waits for it meanwhile: short timeouts
# keep a restarted platform's routes following within seconds.
ROUND_TIMEOUT = timedelta(seconds=10)
ROUND_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=2)
SILENT_NODES: workflow.ActivityConfig = {**QUICK, "start_to_close_timeout": ROUND_TIMEOUT}
# Starting the stopped replicas (all at once, 8 in parallel) after a reboot takes seconds.
FOLLOW_TIMEOUT = timedelta(seconds=15)


class FleetWatchInput(Contract):
    probe_interval_seconds: float = 2.0


@workflow.defn
class FleetWatchWorkflow:
    def __init__(self) -> None:
        self._healed: list[str] = []
        self._removed: list[str] = []
        self._followed: list[str] = []

    @workflow.query
    def healed(self) -> list[str]:
        """The deployments this run started to replace replicas of DOWN nodes, or missing ones."""
        return list(self._healed)

    @workflow.query
    def removed(self) -> list[str]:
        """The unowned replicas this run removed."""
        return list(self._removed)

    @workflow.query
    def followed(self) -> list[str]:
        """What this run did to keep routes on the replicas that run (the last 100 lines)."""
        return list(self._followed)

    @workflow.run
    async def run(self, watch: FleetWatchInput) -> None:
        for round_ in range(ROUNDS_PER_RUN):
            down: list[str] = await workflow.execute_activity_method(
                FleetActivities.mark_silent_nodes,
                **SILENT_NODES,
            )
            for node_id in down:
                self._healed += await workflow.execute_activity_method(
                    FleetActivities.heal_node, node_id, **QUICK
                )
            if workflow.patched(FOLLOW_REPLICAS):
                await self._follow_replicas()
            if workflow.patched(REPLACE_MISSING):
                await self._replace_missing()
            if round_ % RECONCILE_EVERY == RECONCILE_EVERY - 1 and workflow.patched(RECONCILE_UNOWNED):
                self._removed += await workflow.execute_activity_method(
                    AgentActivities.remove_unowned_replicas, **SLOW
                )
            await workflow.sleep(timedelta(seconds=watch.probe_interval_seconds))
        workflow.continue_as_new(watch)

    async def _follow_replicas(self) -> None:
        """A round that cannot follow (the database or an agent is away) is skipped: the next one tries
        again, and marking silent nodes DOWN must not wait for it."""
        try:
            followed = await workflow.execute_activity_method(
                RoutingActivities.follow_replicas,
                start_to_close_timeout=FOLLOW_TIMEOUT,
                retry_policy=ROUND_RETRY,
            )
        except ActivityError as exc:
            workflow.logger.warning("routes not followed this round: %s", reason_of(exc))
            return
        self._followed = (self._followed + followed)[-100:]

    async def _replace_missing(self) -> None:
        """Skipped for this round when it cannot run, as following routes is."""
        try:
            self._healed += await workflow.execute_activity_method(
                FleetActivities.replace_missing_replicas,
                start_to_close_timeout=ROUND_TIMEOUT,
                retry_policy=ROUND_RETRY,
            )
        except ActivityError as exc:
            workflow.logger.warning("missing replicas not replaced this round: %s", reason_of(exc))
