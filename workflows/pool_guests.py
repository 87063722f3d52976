"""One guest of a node pool on Proxmox VE: ProvisionNodeWorkflow makes it a READY node,
DecommissionNodeWorkflow takes it away (NodePoolWorkflow, workflows/pools.py, starts both).

    provision/<node id>      choose a PVE node → clone (re-placed when the node answers 595) → wait for the
                             clone → join token → configure → start → join data (VMs) → address → enrolled
                             → READY
    decommission/<node id>   cordon → drain → no replica left → stop → destroy → remove the node (its
                             certificate revoked) → DESTROYED; a failure before `stop` is undone (the
                             node uncordoned, READY again, the pool tries later with backoff), one after
                             it leaves the guest FAILED with the step and the reason

The node id is reserved before the guest exists: the guest is named and tagged with it (a retried step finds
the guest it made instead of cloning another) and its agent enrolls as that node. A failed provisioning is
compensated: the guest is destroyed, the node's join tokens revoked and the node removed if it had enrolled;
the pool node ends FAILED with the step and PVE's reason. Retries of PVE's transient failures (locks, 5xx,
vmid races) come from the activities' retry policies. LXC clones of one template are serialized by PVE's own
lock on the template: a clone that finds it locked (`CT is locked (disk)`) fails as PveTransient and
allocate_guest is retried with backoff until the clone before it is done. Both signal `reconcile` to their
pool when they end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

from workflows.saga import Saga
from workflows.steps import error_type, reason_of, to_the_end

with workflow.unsafe.imports_passed_through():
    from pydantic import Field

    from activities.pools import (
        EnrolledNode,
        JoinTokenRequest,
        NodeDrainState,
        PoolActivities,
        PoolNodeUpdate,
    )
    from activities.proxmox.activities import ProxmoxActivities
    from activities.proxmox.contracts import (
        GuestAddress,
        GuestAllocation,
        GuestAllocationRequest,
        GuestConfigRequest,
        GuestDestroyRequest,
        GuestRef,
        GuestRequest,
        GuestStopRequest,
        JoinDataRequest,
        PveNodeRequest,
        PveTaskRequest,
    )
    from core.contracts import Contract
    from core.naming import pool_workflow_id
    from core.pools import PoolNodeState
    from core.proxmox.placement import PveNodeChoice
    from core.proxmox.spec import NodePoolSpec


MAX_PLACEMENTS = 3  # PVE nodes tried when the chosen one answers 595
RECONCILE_SIGNAL = "reconcile"

DB: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
    ),
}
PVE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2, maximum_interval=timedelta(seconds=10)
)
# A call may wait a minute for a PVE lock (proxmox_timeout_seconds): a step gets more than two.
PVE_CALL: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(minutes=3),
    "schedule_to_close_timeout": timedelta(minutes=15),
    "retry_policy": PVE_RETRY,
}
# allocate_guest: an LXC template is locked while another clone of it runs; retried until it is free.
CLONE: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(minutes=3),
    "schedule_to_close_timeout": timedelta(minutes=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=1.5,
        maximum_interval=timedelta(seconds=5),
    ),
}
# Steps that heartbeat throughout (task waits, start, stop, destroy): a dead worker's step moves on in 30 s.
PVE_TASK: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(hours=1),
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": PVE_RETRY,
}
# Waiting for the guest: its agent (write_join_data) and its address answer once it has booted.
GUEST_BOOT: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(minutes=3),
    "schedule_to_close_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=1.5,
        maximum_interval=timedelta(seconds=5),
    ),
}
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=8
)
COMPENSATION: workflow.ActivityConfig = {
    "start_to_close_timeout": timedelta(minutes=3),
    "retry_policy": COMPENSATION_RETRY,
}
COMPENSATION_TASK: workflow.ActivityConfig = {**COMPENSATION, "heartbeat_timeout": timedelta(seconds=30)}
POLL_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=1.5,
    maximum_interval=timedelta(seconds=3),
)


class ProvisionNodeInput(Contract):
    pool_id: str
    node_id: str
    spec: NodePoolSpec
    enroll_timeout_seconds: float = Field(default=600, gt=0)
    join_token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)


class ProvisionNodeResult(Contract):
    node_id: str
    guest: GuestRef
    address: str
    name: str


class DecommissionNodeInput(Contract):
    pool_id: str
    node_id: str
    drain_timeout_seconds: float = Field(default=600, gt=0)
    grace_seconds: float = Field(default=5, ge=0, description="after the drain, before the guest stops")
    shutdown_timeout_seconds: int = Field(default=30, ge=0)


class DecommissionNodeResult(Contract):
    node_id: str
    guest: GuestRef | None
    drained: NodeDrainState


# --- one guest ------------------------------------------------------------------------------------------


# What a compensation that failed leaves behind, for the pool node's message.
LEFT_BEHIND = {
    "its guest": "its guest (tagged dyn-{node}) may be left on Proxmox: {reason}",
    "its join token": "its join token could not be revoked: {reason}",
    "its node": "its node could not be revoked: {reason}",
}


@workflow.defn
class ProvisionNodeWorkflow:
    def __init__(self) -> None:
        self._step = "place"
        self._saga = Saga()

    @workflow.query
    def step(self) -> str:
        return self._step

    @workflow.run
    async def run(self, args: ProvisionNodeInput) -> ProvisionNodeResult:
        try:
            return await self._provision(args)
        except BaseException as exc:
            cancelled = is_cancelled_exception(exc)
            if not cancelled and not isinstance(exc, ActivityError | ApplicationError | ChildWorkflowError):
                raise
            message = f"provisioning failed at step {self._step}: {reason_of(exc)}"
            failed = await to_the_end(self._saga.compensate())
            node = args.node_id.lower()
            for name, reason in failed:
                message += "; " + LEFT_BEHIND[name].format(node=node, reason=reason)
            await to_the_end(update_pool_node(args.node_id, state=PoolNodeState.FAILED, message=message))
            await to_the_end(notify_pool(args.pool_id))
            if cancelled:
                raise
            raise ApplicationError(message, type="ProvisionFailed", non_retryable=True) from exc

    async def _provision(self, args: ProvisionNodeInput) -> ProvisionNodeResult:
        spec, node_id = args.spec, args.node_id
        # Registered before anything is made, each harmless when its step never ran; they run in reverse:
        # the guest is destroyed first (wherever it is), then the node's join tokens revoked, then the node
        # removed if it enrolled.
        self._saga.on_failure("its node", lambda: undo(PoolActivities.remove_node, node_id))
        self._saga.on_failure("its join token", lambda: undo(PoolActivities.revoke_join_tokens, node_id))
        self._saga.on_failure("its guest", lambda: self._destroy_guest(node_id))
        allocation = await self._clone(args)
        guest = allocation.guest
        await update_pool_node(node_id, pve_node=guest.pve_node, vmid=guest.vmid)
        if allocation.upid is not None:
            await workflow.execute_activity_method(
                ProxmoxActivities.wait_pve_task, PveTaskRequest(upid=allocation.upid, guest=guest), **PVE_TASK
            )

        self._step = "configure"
        join = await workflow.execute_activity_method(
            PoolActivities.issue_join_token,
            JoinTokenRequest(
                node_id=node_id,
                pool_name=spec.name,
                labels=spec.labels,
                ttl_seconds=args.join_token_ttl_seconds,
            ),
            **DB,
        )
        await workflow.execute_activity_method(
            ProxmoxActivities.configure_guest,
            GuestConfigRequest(node_id=node_id, spec=spec, guest=guest, join=join),
            **PVE_CALL,
        )

        self._step = "start"
        await workflow.execute_activity_method(
            ProxmoxActivities.start_guest, GuestRequest(guest=guest), **PVE_TASK
        )
        self._step = "join data"
        await workflow.execute_activity_method(
            ProxmoxActivities.write_join_data, JoinDataRequest(guest=guest, join=join), **GUEST_BOOT
        )
        self._step = "address"
        address: GuestAddress = await workflow.execute_activity_method(
            ProxmoxActivities.guest_address, GuestRequest(guest=guest), **GUEST_BOOT
        )
        await update_pool_node(node_id, state=PoolNodeState.ENROLLING, address=address.address)

        self._step = "enroll"
        enrolled: EnrolledNode = await workflow.execute_activity_method(
            PoolActivities.check_node_enrolled,
            node_id,
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=timedelta(seconds=args.enroll_timeout_seconds),
            retry_policy=POLL_RETRY,
        )
        self._step = "ready"
        self._saga.done()
        await update_pool_node(node_id, state=PoolNodeState.READY, message="")
        await to_the_end(notify_pool(args.pool_id))
        return ProvisionNodeResult(node_id=node_id, guest=guest, address=address.address, name=enrolled.name)

    async def _clone(self, args: ProvisionNodeInput) -> GuestAllocation:
        """Choose a PVE node and clone the template there; a node that answers 595 is left out of the next
        choice (at most MAX_PLACEMENTS nodes are tried)."""
        unavailable: dict[str, str] = {}
        while True:
            self._step = "place"
            choice: PveNodeChoice = await workflow.execute_activity_method(
                ProxmoxActivities.choose_pve_node,
                PveNodeRequest(spec=args.spec, unavailable=unavailable),
                **PVE_CALL,
            )
            self._step = "clone"
            try:
                return await workflow.execute_activity_method(
                    ProxmoxActivities.allocate_guest,
                    GuestAllocationRequest(node_id=args.node_id, spec=args.spec, placement=choice),
                    **CLONE,
                )
            except ActivityError as exc:
                if error_type(exc) != "PveNodeUnavailable" or choice.node is None:
                    raise
                unavailable[choice.node] = reason_of(exc)
                workflow.logger.warning("PVE node %s unavailable: %s", choice.node, unavailable[choice.node])
                if len(unavailable) >= MAX_PLACEMENTS:
                    raise

    async def _destroy_guest(self, node_id: str) -> None:
        """The guest made for the node, wherever it is now, destroyed."""
        guest: GuestRef | None = await workflow.execute_activity_method(
            PoolActivities.locate_guest, node_id, **COMPENSATION
        )
        if guest is not None:
            await workflow.execute_activity_method(
                ProxmoxActivities.destroy_guest,
                GuestDestroyRequest(node_id=node_id, guest=guest),
                **COMPENSATION_TASK,
            )


@workflow.defn
class DecommissionNodeWorkflow:
    def __init__(self) -> None:
        self._step = "cordon"
        self._saga = Saga()

    @workflow.query
    def step(self) -> str:
        return self._step

    @workflow.run
    async def run(self, args: DecommissionNodeInput) -> DecommissionNodeResult:
        try:
            return await self._decommission(args)
        except BaseException as exc:
            cancelled = is_cancelled_exception(exc)
            if not cancelled and not isinstance(exc, ActivityError | ApplicationError):
                raise
            message = f"decommission failed at step {self._step}: {reason_of(exc)}"
            # Histories begun before the saga end FAILED at any step, as they did.
            if self._saga.pending and workflow.patched("decommission-undone"):
                failed = await to_the_end(self._saga.compensate())
                if not failed:
                    await to_the_end(self._back_to_ready(args, message + "; undone: the node serves again"))
                    if cancelled:
                        raise
                    raise ApplicationError(message, type="DecommissionUndone", non_retryable=True) from exc
                message += "".join(f"; {name} failed too: {reason}" for name, reason in failed)
            await to_the_end(update_pool_node(args.node_id, state=PoolNodeState.FAILED, message=message))
            await to_the_end(notify_pool(args.pool_id))
            if cancelled:
                raise
            raise ApplicationError(message, type="DecommissionFailed", non_retryable=True) from exc

    async def _decommission(self, args: DecommissionNodeInput) -> DecommissionNodeResult:
        node_id = args.node_id
        await update_pool_node(node_id, state=PoolNodeState.DECOMMISSIONING)
        # Until the guest stops, a failure (a drain that times out: its replicas found no other node) is
        # undone: the node takes replicas again, and the pool tries later (core/pools.py).
        self._saga.on_failure("uncordon", lambda: undo(PoolActivities.uncordon_node, node_id))
        await workflow.execute_activity_method(PoolActivities.cordon_node, node_id, **DB)
        self._step = "drain"
        await workflow.execute_activity_method(PoolActivities.drain_node, node_id, **DB)
        drained: NodeDrainState = await workflow.execute_activity_method(
            PoolActivities.check_node_drained,
            node_id,
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=timedelta(seconds=args.drain_timeout_seconds),
            retry_policy=POLL_RETRY,
        )
        # The old replicas finish their requests (the rollouts' overlap) before their machine goes.
        await workflow.sleep(timedelta(seconds=args.grace_seconds))

        self._step = "stop"
        self._saga.done()  # from here the guest goes: nothing to undo, a failure leaves it FAILED
        guest: GuestRef | None = await workflow.execute_activity_method(
            PoolActivities.locate_guest, node_id, **PVE_CALL
        )
        if guest is not None:
            await workflow.execute_activity_method(
                ProxmoxActivities.stop_guest,
                GuestStopRequest(guest=guest, shutdown_timeout_seconds=args.shutdown_timeout_seconds),
                **PVE_TASK,
            )
            self._step = "destroy"
            await workflow.execute_activity_method(
                ProxmoxActivities.destroy_guest, GuestDestroyRequest(node_id=node_id, guest=guest), **PVE_TASK
            )
        self._step = "remove"
        await workflow.execute_activity_method(PoolActivities.remove_node, node_id, **DB)
        await workflow.execute_activity_method(PoolActivities.revoke_join_tokens, node_id, **DB)
        await update_pool_node(node_id, state=PoolNodeState.DESTROYED, message="decommissioned")
        await to_the_end(notify_pool(args.pool_id))
        return DecommissionNodeResult(node_id=node_id, guest=guest, drained=drained)

    async def _back_to_ready(self, args: DecommissionNodeInput, message: str) -> None:
        await update_pool_node(
            args.node_id, state=PoolNodeState.READY, message=message, decommission_undone=True
        )
        await notify_pool(args.pool_id)


# --- the pool --------------------------------------------------------------------------------------------


# --- helpers ---------------------------------------------------------------------------------------------


async def undo(activity: Callable[[Any, str], Awaitable[object]], node_id: str) -> None:
    """A compensation: the node activity, with the compensations' patient retries."""
    await workflow.execute_activity_method(activity, node_id, **COMPENSATION)


async def update_pool_node(node_id: str, **fields: Any) -> None:
    await workflow.execute_activity_method(
        PoolActivities.update_pool_node, PoolNodeUpdate(node_id=node_id, **fields), **DB
    )


async def notify_pool(pool_id: str) -> None:
    """Tell the pool a guest settled, so it reconciles now; a pool that has ended needs no word."""
    try:
        await workflow.get_external_workflow_handle(pool_workflow_id(pool_id)).signal(RECONCILE_SIGNAL)
    except Exception as exc:  # the pool may be gone; nothing depends on the signal
        workflow.logger.info("pool %s not told: %s", pool_id, exc)


__all__ = [
    "DB",
    "RECONCILE_SIGNAL",
    "DecommissionNodeInput",
    "DecommissionNodeWorkflow",
    "ProvisionNodeInput",
    "ProvisionNodeWorkflow",
    "notify_pool",
    "update_pool_node",
]
