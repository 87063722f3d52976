"""Node pool workflows on a real Temporal server, with the Proxmox and database activities replaced under
their real names by a fake cluster that behaves like PVE where it matters: a guest is found again by its
node id, a clone can fail, a PVE node can answer 595.

- a clone whose task fails is compensated: the guest is looked for and destroyed, the node's join tokens
  revoked, and the pool node ends FAILED naming the step and PVE's reason;
- a PVE node answering 595 is left out and the guest is placed on another;
- allocate_guest interrupted by a worker shutdown runs again on the next worker and finds the guest the
  first attempt cloned: one guest, READY;
- a pool grows to its size and shrinks newest first;
- a decommission whose drain never ends is undone: the node uncordoned, the guest READY again with the
  reason, counted for the pool's backoff; one that fails once the guest is stopping leaves it FAILED.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.pools import (
    EnrolledNode,
    JoinTokenRequest,
    NodeDrainState,
    PoolNodeRecord,
    PoolNodeUpdate,
    PoolSnapshot,
)
from activities.proxmox.contracts import (
    GuestAddress,
    GuestAllocation,
    GuestAllocationRequest,
    GuestConfigRequest,
    GuestConfigured,
    GuestDestroyed,
    GuestDestroyRequest,
    GuestPowerResult,
    GuestRef,
    GuestRequest,
    GuestStopRequest,
    JoinDataRequest,
    JoinDataWritten,
    PveNodeRequest,
    PveTaskRequest,
    PveTaskResult,
)
from core.naming import decommission_workflow_id, pool_workflow_id, provision_workflow_id
from core.pools import PoolNodeState, PoolNodeView, PoolView
from core.proxmox.joindata import JoinData
from core.proxmox.placement import PveNodeChoice
from core.proxmox.spec import GuestKind, NodePoolSpec
from workflows.pools import (
    DecommissionNodeInput,
    DecommissionNodeWorkflow,
    NodePoolInput,
    NodePoolWorkflow,
    ProvisionNodeInput,
    ProvisionNodeWorkflow,
)
from workflows.worker import WORKFLOWS

pytestmark = pytest.mark.timeout(90)

SPEC = NodePoolSpec(name="web", kind=GuestKind.LXC, template_vmid=9000, min_size=0, max_size=5)
NODES = ("pve1", "pve2", "pve3")


@dataclass
class FakePool:
    """One pool's rows and a PVE cluster, in memory; the activities answer like the real ones."""

    size: int = 0
    guests: dict[int, tuple[str, str]] = field(default_factory=dict)  # vmid → (node id, PVE node)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id → pool node
    offline: set[str] = field(default_factory=set)
    clone_error: str | None = None
    hang_first_allocation: bool = False
    allocation_entered: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[str] = field(default_factory=list)
    updates: list[PoolNodeUpdate] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    enrolled: set[str] = field(default_factory=set)
    stuck_replicas: int = 0  # replicas that find no other node: the drain never ends
    destroy_error: str | None = None

    def record(self, name: str) -> None:
        self.calls.append(name)

    # --- Proxmox -----------------------------------------------------------------------------------------

    @activity.defn(name="choose_pve_node")
    async def choose_pve_node(self, request: PveNodeRequest) -> PveNodeChoice:
        self.record("choose_pve_node")
        node = next(n for n in NODES if n not in request.unavailable)
        return PveNodeChoice(node=node, template_node="pve1", storage="ceph-vm")

    @activity.defn(name="allocate_guest")
    async def allocate_guest(self, request: GuestAllocationRequest) -> GuestAllocation:
        self.record("allocate_guest")
        node = request.placement.node or "pve1"
        for vmid, (owner, pve_node) in self.guests.items():
            if owner == request.node_id:
                return GuestAllocation(guest=self._ref(vmid, pve_node), upid=None, created=False)
        if node in self.offline:
            raise ApplicationError(
                f"clone failed on PVE node {node}: 595 No route to host",
                "node-unavailable",
                type="PveNodeUnavailable",
                non_retryable=True,
            )
        vmid = 100 + len(self.guests)
        self.guests[vmid] = (request.node_id, node)
        if self.hang_first_allocation:
            self.hang_first_allocation = False
            self.allocation_entered.set()
            await asyncio.Event().wait()  # the worker goes away while the clone's answer is in flight
        return GuestAllocation(guest=self._ref(vmid, node), upid=f"UPID:{node}:clone:{vmid}", created=True)

    @activity.defn(name="wait_pve_task")
    async def wait_pve_task(self, request: PveTaskRequest) -> PveTaskResult:
        self.record("wait_pve_task")
        if self.clone_error is not None:
            assert request.guest is not None
            del self.guests[request.guest.vmid]  # PVE removes what a failed clone made
            raise ApplicationError(
                f"task qmclone failed on PVE node {request.guest.pve_node}, vmid {request.guest.vmid}: "
                f"{self.clone_error}",
                "task-failed",
                type="PveTaskFailed",
                non_retryable=True,
            )
        return PveTaskResult(upid=request.upid, exitstatus="OK")

    @activity.defn(name="configure_guest")
    async def configure_guest(self, request: GuestConfigRequest) -> GuestConfigured:
        self.record("configure_guest")
        return GuestConfigured(guest=request.guest, disk="rootfs", resized=True)

    @activity.defn(name="start_guest")
    async def start_guest(self, request: GuestRequest) -> GuestPowerResult:
        self.record("start_guest")
        return GuestPowerResult(guest=request.guest, changed=True)

    @activity.defn(name="write_join_data")
    async def write_join_data(self, request: JoinDataRequest) -> JoinDataWritten:
        self.record("write_join_data")
        return JoinDataWritten(guest=request.guest, path=None)

    @activity.defn(name="guest_address")
    async def guest_address(self, request: GuestRequest) -> GuestAddress:
        self.record("guest_address")
        self.enrolled.add(self.guests[request.guest.vmid][0])  # the agent boots and enrolls
        return GuestAddress(guest=request.guest, address=f"127.0.2.{request.guest.vmid - 99}")

    @activity.defn(name="stop_guest")
    async def stop_guest(self, request: GuestStopRequest) -> GuestPowerResult:
        self.record("stop_guest")
        return GuestPowerResult(guest=request.guest, changed=True)

    @activity.defn(name="destroy_guest")
    async def destroy_guest(self, request: GuestDestroyRequest) -> GuestDestroyed:
        self.record("destroy_guest")
        if self.destroy_error is not None:
            raise ApplicationError(self.destroy_error, type="PveTaskFailed", non_retryable=True)
        existed = self.guests.pop(request.guest.vmid, None) is not None
        return GuestDestroyed(guest=request.guest, existed=existed)

    @activity.defn(name="locate_guest")
    async def locate_guest(self, node_id: str) -> GuestRef | None:
        self.record("locate_guest")
        found = [(vmid, pve) for vmid, (owner, pve) in self.guests.items() if owner == node_id]
        return self._ref(*found[0]) if found else None

    def _ref(self, vmid: int, pve_node: str) -> GuestRef:
        return GuestRef(kind=GuestKind.LXC, pve_node=pve_node, vmid=vmid)

    # --- database and control plane ----------------------------------------------------------------------

    @activity.defn(name="load_pool")
    async def load_pool(self, pool_id: str) -> PoolSnapshot:
        now = datetime.now(UTC)
        nodes = [
            PoolNodeView(
                node_id=node_id,
                state=row["state"],
                created_at=row["created_at"],
                ready_at=row.get("ready_at"),
                finished_at=row.get("finished_at"),
                node_state="READY" if node_id in self.enrolled else None,
                last_heartbeat_at=now,
            )
            for node_id, row in self.rows.items()
        ]
        view = PoolView(pool_id=pool_id, name="web", size=self.size, min_size=0, max_size=5, nodes=nodes)
        return PoolSnapshot(view=view, spec=SPEC)

    @activity.defn(name="finish_pool_removal")
    async def finish_pool_removal(self, pool_id: str) -> None:
        self.record("finish_pool_removal")

    @activity.defn(name="record_pool_node")
    async def record_pool_node(self, record: PoolNodeRecord) -> None:
        self.rows.setdefault(
            record.node_id, {"state": PoolNodeState.PROVISIONING, "created_at": datetime.now(UTC)}
        )

    @activity.defn(name="update_pool_node")
    async def update_pool_node(self, change: PoolNodeUpdate) -> None:
        self.updates.append(change)
        row = self.rows.setdefault(
            change.node_id, {"state": PoolNodeState.PROVISIONING, "created_at": datetime.now(UTC)}
        )
        if change.state is not None:
            row["state"] = change.state
            if change.state is PoolNodeState.READY:
                row["ready_at"] = datetime.now(UTC)
            if change.state in (PoolNodeState.FAILED, PoolNodeState.DESTROYED):
                row["finished_at"] = datetime.now(UTC)
        if change.message is not None:
            row["message"] = change.message
        if change.decommission_undone:
            row["decommission_failures"] = row.get("decommission_failures", 0) + 1

    @activity.defn(name="issue_join_token")
    async def issue_join_token(self, request: JoinTokenRequest) -> JoinData:
        self.record("issue_join_token")
        return JoinData(
            join_url="http://127.0.0.1:7800",
            join_token=f"dyj_{request.node_id}",
            labels={**request.labels, "pool": request.pool_name},
            node_name="dy-" + request.node_id.removeprefix("node_"),
        )

    @activity.defn(name="revoke_join_tokens")
    async def revoke_join_tokens(self, node_id: str) -> int:
        self.revoked.append(node_id)
        return 1

    @activity.defn(name="check_node_enrolled")
    async def check_node_enrolled(self, node_id: str) -> EnrolledNode:
        if node_id not in self.enrolled:
            raise ApplicationError(f"node {node_id} has not enrolled yet", type="NodeNotEnrolled")
        return EnrolledNode(node_id=node_id, name="dy-x", address="127.0.2.1:7801", state="READY")

    @activity.defn(name="cordon_node")
    async def cordon_node(self, node_id: str) -> str:
        self.record(f"cordon {node_id}")
        return "CORDONED"

    @activity.defn(name="uncordon_node")
    async def uncordon_node(self, node_id: str) -> str:
        self.record(f"uncordon {node_id}")
        return "READY"

    @activity.defn(name="drain_node")
    async def drain_node(self, node_id: str) -> str:
        self.record(f"drain {node_id}")
        return "DRAINING"

    @activity.defn(name="check_node_drained")
    async def check_node_drained(self, node_id: str) -> NodeDrainState:
        if self.stuck_replicas:
            raise ApplicationError(
                f"node {node_id} still runs {self.stuck_replicas} replica(s) of other deployments",
                type="NodeNotDrained",
            )
        return NodeDrainState(node_id=node_id, live_replicas=0, node_state="DRAINING")

    @activity.defn(name="remove_node")
    async def remove_node(self, node_id: str) -> str:
        self.record(f"remove {node_id}")
        self.enrolled.discard(node_id)
        return "removed"

    def activities(self) -> list[Callable[..., Any]]:
        return [
            getattr(self, name)
            for name in (
                "choose_pve_node allocate_guest wait_pve_task configure_guest start_guest write_join_data "
                "guest_address stop_guest destroy_guest locate_guest load_pool finish_pool_removal "
                "record_pool_node update_pool_node issue_join_token revoke_join_tokens check_node_enrolled "
                "cordon_node uncordon_node drain_node check_node_drained remove_node"
            ).split()
        ]


def worker(client: Client, queue: str, fake: FakePool) -> Worker:
    return Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=fake.activities())


def provision(node_id: str) -> ProvisionNodeInput:
    return ProvisionNodeInput(pool_id=f"pool_{uuid.uuid4().hex[:8]}", node_id=node_id, spec=SPEC)


def new_node_id() -> str:
    return f"node_{uuid.uuid4().hex[:12]}"


async def test_a_failed_clone_is_compensated_and_the_node_ends_failed_with_pves_reason(
    temporal_client: Client,
) -> None:
    fake = FakePool(clone_error="clone failed: write error on 'ceph-vm': No space left on device")
    queue = f"pools-{uuid.uuid4().hex[:8]}"
    node_id = new_node_id()
    async with worker(temporal_client, queue, fake):
        with pytest.raises(WorkflowFailureError) as failed:
            await temporal_client.execute_workflow(
                ProvisionNodeWorkflow.run,
                provision(node_id),
                id=provision_workflow_id(node_id),
                task_queue=queue,
            )

    message = str(failed.value.cause)
    assert "provisioning failed at step clone" in message
    assert "No space left on device" in message and "pve1" in message
    assert fake.rows[node_id]["state"] is PoolNodeState.FAILED
    assert fake.rows[node_id]["message"] == failed.value.cause.message  # type: ignore[attr-defined]
    assert fake.guests == {}  # nothing left on Proxmox
    assert "locate_guest" in fake.calls
    assert fake.revoked == [node_id]
    assert f"remove {node_id}" in fake.calls
    assert "configure_guest" not in fake.calls and "issue_join_token" not in fake.calls


async def test_a_pve_node_answering_595_is_left_out_and_the_guest_goes_to_another(
    temporal_client: Client,
) -> None:
    fake = FakePool(offline={"pve1"})
    queue = f"pools-{uuid.uuid4().hex[:8]}"
    node_id = new_node_id()
    async with worker(temporal_client, queue, fake):
        result = await temporal_client.execute_workflow(
            ProvisionNodeWorkflow.run, provision(node_id), id=provision_workflow_id(node_id), task_queue=queue
        )

    assert result.guest.pve_node == "pve2"
    assert list(fake.guests.values()) == [(node_id, "pve2")]
    assert fake.calls.count("choose_pve_node") == 2
    assert fake.rows[node_id]["state"] is PoolNodeState.READY


async def test_an_allocation_retried_after_a_worker_restart_makes_no_second_guest(
    temporal_client: Client,
) -> None:
    fake = FakePool(hang_first_allocation=True)
    queue = f"pools-{uuid.uuid4().hex[:8]}"
    node_id = new_node_id()
    first = worker(temporal_client, queue, fake)
    async with first:
        handle = await temporal_client.start_workflow(
            ProvisionNodeWorkflow.run, provision(node_id), id=provision_workflow_id(node_id), task_queue=queue
        )
        await asyncio.wait_for(fake.allocation_entered.wait(), 30)
    # The first worker is gone with the allocation's answer; the next one retries the activity.
    async with worker(temporal_client, queue, fake):
        result = await asyncio.wait_for(handle.result(), 60)

    assert list(fake.guests) == [result.guest.vmid]
    assert fake.calls.count("allocate_guest") == 2
    assert fake.rows[node_id]["state"] is PoolNodeState.READY


async def test_a_pool_grows_to_its_size_and_shrinks_newest_first(temporal_client: Client) -> None:
    fake = FakePool(size=3)
    queue = f"pools-{uuid.uuid4().hex[:8]}"
    pool_id = f"pool_{uuid.uuid4().hex[:8]}"
    async with worker(temporal_client, queue, fake):
        handle = await temporal_client.start_workflow(
            NodePoolWorkflow.run,
            NodePoolInput(pool_id=pool_id, reconcile_interval_seconds=0.5, grace_seconds=0),
            id=pool_workflow_id(pool_id),
            task_queue=queue,
        )
        try:
            await _until(lambda: _states(fake).count(PoolNodeState.READY) == 3)
            assert len(fake.guests) == 3
            newest = max(fake.rows, key=lambda node_id: fake.rows[node_id]["created_at"])

            fake.size = 2
            await handle.signal(NodePoolWorkflow.reconcile)
            await _until(lambda: PoolNodeState.DESTROYED in _states(fake))

            assert fake.rows[newest]["state"] is PoolNodeState.DESTROYED
            assert _states(fake).count(PoolNodeState.READY) == 2
            assert [c for c in fake.calls if c.endswith(newest)] == [
                f"cordon {newest}",
                f"drain {newest}",
                f"remove {newest}",
            ]
            assert len(fake.guests) == 2 and newest not in {owner for owner, _ in fake.guests.values()}
        finally:
            await handle.terminate("test over")


async def _decommission(client: Client, queue: str, node_id: str) -> WorkflowFailureError:
    with pytest.raises(WorkflowFailureError) as failed:
        await client.execute_workflow(
            DecommissionNodeWorkflow.run,
            DecommissionNodeInput(
                pool_id=f"pool_{uuid.uuid4().hex[:8]}",
                node_id=node_id,
                drain_timeout_seconds=2,
                grace_seconds=0,
            ),
            id=decommission_workflow_id(node_id),
            task_queue=queue,
        )
    return failed.value


def _ready_guest(fake: FakePool) -> str:
    node_id = new_node_id()
    fake.guests[100] = (node_id, "pve1")
    fake.enrolled.add(node_id)
    fake.rows[node_id] = {"state": PoolNodeState.READY, "created_at": datetime.now(UTC)}
    return node_id


async def test_a_decommission_whose_drain_never_ends_is_undone_and_the_node_serves_again(
    temporal_client: Client,
) -> None:
    fake = FakePool(stuck_replicas=2)
    queue = f"pools-{uuid.uuid4().hex[:8]}"
    node_id = _ready_guest(fake)
    async with worker(temporal_client, queue, fake):
        failure = await _decommission(temporal_client, queue, node_id)

    assert "decommission failed at step drain" in str(failure.cause)
    assert "still runs 2 replica(s)" in str(failure.cause)
    assert [c for c in fake.calls if c.endswith(node_id)] == [
        f"cordon {node_id}",
        f"drain {node_id}",
        f"uncordon {node_id}",
    ]
    row = fake.rows[node_id]
    assert row["state"] is PoolNodeState.READY and row["decommission_failures"] == 1
    assert row["message"].endswith("undone: the node serves again")
    assert "stop_guest" not in fake.calls and fake.guests == {100: (node_id, "pve1")}  # the guest stays


async def test_a_decommission_failing_once_the_guest_stops_leaves_it_failed_not_uncordoned(
    temporal_client: Client,
) -> None:
    fake = FakePool(destroy_error="task vzdestroy failed: storage 'ceph-vm' is not online")
    queue = f"pools-{uuid.uuid4().hex[:8]}"
    node_id = _ready_guest(fake)
    async with worker(temporal_client, queue, fake):
        failure = await _decommission(temporal_client, queue, node_id)

    assert "decommission failed at step destroy" in str(failure.cause)
    assert fake.rows[node_id]["state"] is PoolNodeState.FAILED
    assert "storage 'ceph-vm' is not online" in fake.rows[node_id]["message"]
    assert f"uncordon {node_id}" not in fake.calls and "decommission_failures" not in fake.rows[node_id]


def _states(fake: FakePool) -> list[PoolNodeState]:
    return [row["state"] for row in fake.rows.values()]


async def _until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the pool never got there"
        await asyncio.sleep(0.05)
