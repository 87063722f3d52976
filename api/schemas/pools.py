"""Node pools and the guests in them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.printable import PrintableText
from api.schemas.common import Body, Read
from core.proxmox.spec import NodePoolSpec


class NodePoolCreate(NodePoolSpec, PrintableText):
    """A node pool: the spec of its guests (core.proxmox.spec.NodePoolSpec, validated field by field)
    and how many there are to be now."""

    size: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="guests wanted now, between min_size and max_size; default min_size",
    )


class NodePoolUpdate(Body):
    size: int | None = Field(default=None, ge=0, le=1000)
    min_size: int | None = Field(default=None, ge=0, le=1000)
    max_size: int | None = Field(default=None, ge=1, le=1000)


class PoolNodeRead(Read):
    node_id: str = Field(
        description="the Dockyard node id; the guest is named dy-<id> and tagged dyn-<node id>"
    )
    state: str = Field(description="PROVISIONING | ENROLLING | READY | FAILED | DECOMMISSIONING | DESTROYED")
    kind: str
    pve_node: str | None
    vmid: int | None
    address: str | None
    message: str | None = Field(
        description="why it FAILED: the step, the PVE node, the vmid and PVE's reason"
    )
    workflow_id: str
    node_state: str | None = Field(default=None, description="the enrolled node's state (READY, DOWN, ...)")
    created_at: datetime
    ready_at: datetime | None
    finished_at: datetime | None


class NodePoolRead(Read):
    id: str
    name: str
    kind: str
    template_vmid: int
    spec: dict[str, Any]
    min_size: int
    max_size: int
    size: int
    workflow_id: str
    created_at: datetime
    updated_at: datetime
    delete_requested_at: datetime | None
    removed_at: datetime | None
    nodes: list[PoolNodeRead] = Field(default_factory=list)
