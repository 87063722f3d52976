"""Inputs and results of the Proxmox activities (one input and one result type each)."""

from __future__ import annotations

from pydantic import Field

from core.contracts import Contract
from core.proxmox.joindata import JoinData
from core.proxmox.placement import PveNodeChoice
from core.proxmox.spec import GuestKind, NodePoolSpec, Vmid


class GuestRef(Contract):
    """One guest: which kind, on which PVE node, with which vmid."""

    kind: GuestKind
    pve_node: str
    vmid: Vmid

    def __str__(self) -> str:
        return f"{self.kind.value} {self.vmid} on PVE node {self.pve_node}"


class PveNodeRequest(Contract):
    spec: NodePoolSpec
    unavailable: dict[str, str] = Field(
        default_factory=dict, description="PVE nodes to avoid (they answered 595) → why"
    )


class GuestAllocationRequest(Contract):
    node_id: str = Field(min_length=1, description="the Dockyard node the guest is for")
    spec: NodePoolSpec
    placement: PveNodeChoice = Field(description="choose_pve_node's answer")


class GuestAllocation(Contract):
    guest: GuestRef
    upid: str | None = Field(description="the clone's task; None when the guest was already there")
    created: bool


class PveTaskRequest(Contract):
    upid: str
    guest: GuestRef | None = Field(default=None, description="what the task is about, for messages")


class PveTaskResult(Contract):
    upid: str
    exitstatus: str = Field(description="OK or WARNINGS: <n>")
    warnings: int = 0


class GuestConfigRequest(Contract):
    node_id: str = Field(min_length=1)
    spec: NodePoolSpec
    guest: GuestRef
    join: JoinData


class GuestConfigured(Contract):
    guest: GuestRef
    disk: str = Field(description="the root disk: rootfs, scsi0, virtio0, ...")
    resized: bool = Field(description="False when the disk was already at least the pool's size")


class GuestRequest(Contract):
    guest: GuestRef


class GuestStopRequest(Contract):
    guest: GuestRef
    shutdown_timeout_seconds: int | None = Field(
        default=60, ge=0, description="clean shutdown, then a hard stop after this long; None: stop at once"
    )


class GuestPowerResult(Contract):
    guest: GuestRef
    changed: bool = Field(description="False when the guest already was in that state")
    upid: str | None = None


class JoinDataRequest(Contract):
    guest: GuestRef
    join: JoinData


class JoinDataWritten(Contract):
    guest: GuestRef
    path: str | None = Field(description="the file written in a VM; None for LXC (its env carries the data)")


class GuestAddress(Contract):
    guest: GuestRef
    address: str


class GuestDestroyRequest(Contract):
    node_id: str = Field(
        min_length=1, description="the guest is destroyed only while it is still this node's"
    )
    guest: GuestRef


class GuestDestroyed(Contract):
    guest: GuestRef
    existed: bool
