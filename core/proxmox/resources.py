"""`GET /cluster/resources` as a typed snapshot: the PVE nodes, their storages and the guests.

Rows are read leniently (PVE adds fields over releases; absent numbers count as 0) but typed once here, so
placement and guest lookup work on plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from core.contracts import Contract
from core.proxmox.spec import GuestKind

MIB = 1024 * 1024
GIB = 1024 * MIB


class PveNode(Contract):
    name: str
    online: bool
    maxmem: int = Field(default=0, description="bytes")
    mem: int = Field(default=0, description="bytes in use")
    maxcpu: float = 0

    @property
    def free_memory_mib(self) -> int:
        return max(self.maxmem - self.mem, 0) // MIB


class PveStorage(Contract):
    node: str
    storage: str
    available: bool
    shared: bool = False
    maxdisk: int = Field(default=0, description="bytes")
    disk: int = Field(default=0, description="bytes in use")

    @property
    def free_gib(self) -> float:
        return max(self.maxdisk - self.disk, 0) / GIB


class PveGuest(Contract):
    vmid: int
    kind: GuestKind
    node: str
    name: str = ""
    status: str = ""
    template: bool = False
    tags: tuple[str, ...] = ()
    lock: str | None = None


class ClusterSnapshot(Contract):
    nodes: list[PveNode] = Field(default_factory=list)
    storages: list[PveStorage] = Field(default_factory=list)
    guests: list[PveGuest] = Field(default_factory=list)

    def guest(self, vmid: int) -> PveGuest | None:
        return next((guest for guest in self.guests if guest.vmid == vmid), None)

    def storage(self, node: str, storage: str) -> PveStorage | None:
        return next((s for s in self.storages if s.node == node and s.storage == storage), None)


def parse_tags(text: str | None) -> tuple[str, ...]:
    """PVE's tag list: `;` in answers, though `,` and spaces are accepted on input."""
    return tuple(tag for tag in (text or "").replace(",", ";").replace(" ", ";").split(";") if tag)


def cluster_snapshot(rows: Iterable[Mapping[str, Any]]) -> ClusterSnapshot:
    nodes: list[PveNode] = []
    storages: list[PveStorage] = []
    guests: list[PveGuest] = []
    for row in rows:
        kind = row.get("type")
        if kind == "node":
            nodes.append(
                PveNode(
                    name=str(row.get("node") or row.get("id", "").removeprefix("node/")),
                    online=row.get("status") == "online",
                    maxmem=int(row.get("maxmem") or 0),
                    mem=int(row.get("mem") or 0),
                    maxcpu=float(row.get("maxcpu") or 0),
                )
            )
        elif kind == "storage":
            storages.append(
                PveStorage(
                    node=str(row.get("node", "")),
                    storage=str(row.get("storage", "")),
                    available=row.get("status") == "available",
                    shared=bool(int(row.get("shared") or 0)),
                    maxdisk=int(row.get("maxdisk") or 0),
                    disk=int(row.get("disk") or 0),
                )
            )
        elif kind in (GuestKind.LXC.value, GuestKind.QEMU.value) and row.get("vmid") is not None:
            guests.append(
                PveGuest(
                    vmid=int(row["vmid"]),
                    kind=GuestKind(kind),
                    node=str(row.get("node", "")),
                    name=str(row.get("name") or ""),
                    status=str(row.get("status") or ""),
                    template=bool(int(row.get("template") or 0)),
                    tags=parse_tags(row.get("tags")),
                    lock=row.get("lock") or None,
                )
            )
    return ClusterSnapshot(nodes=nodes, storages=storages, guests=guests)
