"""Node pools on Proxmox VE: NodePoolWorkflow (`pool/<pool id>`) keeps a pool at its size.

    load the pool → plan (core/pools.py) → start provisions and decommissions (workflows/pool_guests.py)
    → wait for a signal (resize, a guest settled) or the reconcile interval → again

Provisions and decommissions are started as children the pool abandons (ParentClosePolicy.ABANDON), so they
carry on while the pool continues as new; they signal `reconcile` to the pool when they end.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import (
    WorkflowAlreadyStartedError,
)

from workflows.pool_guests import (
    DB,
    RECONCILE_SIGNAL,
    DecommissionNodeInput,
    DecommissionNodeWorkflow,
    ProvisionNodeInput,
    ProvisionNodeWorkflow,
    update_pool_node,
)

with workflow.unsafe.imports_passed_through():
    from pydantic import Field

    from activities.pools import (
        PoolActivities,
        PoolNodeRecord,
        PoolSnapshot,
    )
    from core.contracts import Contract
    from core.naming import decommission_workflow_id, provision_workflow_id
    from core.pools import PoolNodeState, PoolPlan, PoolPolicy, plan_pool
    from core.temporal import search_attributes


ROUNDS_PER_RUN = 500


class NodePoolInput(Contract):
    pool_id: str
    policy: PoolPolicy = Field(default_factory=PoolPolicy)
    reconcile_interval_seconds: float = Field(default=30, gt=0)
    enroll_timeout_seconds: float = Field(default=600, gt=0)
    drain_timeout_seconds: float = Field(default=600, gt=0)
    grace_seconds: float = Field(default=5, ge=0)


@workflow.defn
class NodePoolWorkflow:
    def __init__(self) -> None:
        self._poked = False
        self._plan: PoolPlan | None = None

    @workflow.signal(name=RECONCILE_SIGNAL)
    def reconcile(self) -> None:
        """Look at the pool again now (its size changed, a guest settled)."""
        self._poked = True

    @workflow.query
    def last_plan(self) -> PoolPlan | None:
        return self._plan

    @workflow.run
    async def run(self, args: NodePoolInput) -> None:
        for _ in range(ROUNDS_PER_RUN):
            self._poked = False
            snapshot: PoolSnapshot = await workflow.execute_activity_method(
                PoolActivities.load_pool, args.pool_id, **DB
            )
            plan = plan_pool(snapshot.view, workflow.now(), args.policy)
            self._plan = plan
            if plan.reason:
                workflow.logger.info("pool %s: %s", snapshot.view.name, plan.reason)
            if plan.finished:
                await workflow.execute_activity_method(PoolActivities.finish_pool_removal, args.pool_id, **DB)
                return
            for node_id in plan.decommission:
                await self._decommission(args, node_id)
            for _ in range(plan.provision):
                await self._provision(args, snapshot)
            wait = args.reconcile_interval_seconds
            if plan.wake_after_seconds is not None:
                wait = min(wait, plan.wake_after_seconds + 0.5)
            try:
                await workflow.wait_condition(lambda: self._poked, timeout=timedelta(seconds=wait))
            except TimeoutError:
                pass
            if workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(args)

    async def _provision(self, args: NodePoolInput, snapshot: PoolSnapshot) -> None:
        node_id = f"node_{workflow.uuid4().hex[:12]}"
        workflow_id = provision_workflow_id(node_id)
        await workflow.execute_activity_method(
            PoolActivities.record_pool_node,
            PoolNodeRecord(
                pool_id=args.pool_id, node_id=node_id, kind=snapshot.spec.kind, workflow_id=workflow_id
            ),
            **DB,
        )
        await workflow.start_child_workflow(
            ProvisionNodeWorkflow.run,
            ProvisionNodeInput(
                pool_id=args.pool_id,
                node_id=node_id,
                spec=snapshot.spec,
                enroll_timeout_seconds=args.enroll_timeout_seconds,
            ),
            id=workflow_id,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            search_attributes=search_attributes(node_id=node_id),
        )

    async def _decommission(self, args: NodePoolInput, node_id: str) -> None:
        await update_pool_node(node_id, state=PoolNodeState.DECOMMISSIONING)
        try:
            await workflow.start_child_workflow(
                DecommissionNodeWorkflow.run,
                DecommissionNodeInput(
                    pool_id=args.pool_id,
                    node_id=node_id,
                    drain_timeout_seconds=args.drain_timeout_seconds,
                    grace_seconds=args.grace_seconds,
                ),
                id=decommission_workflow_id(node_id),
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                search_attributes=search_attributes(node_id=node_id),
            )
        except WorkflowAlreadyStartedError:
            pass  # running since an earlier round


__all__ = [
    "RECONCILE_SIGNAL",
    "DecommissionNodeInput",
    "DecommissionNodeWorkflow",
    "NodePoolInput",
    "NodePoolWorkflow",
    "ProvisionNodeInput",
    "ProvisionNodeWorkflow",
]
