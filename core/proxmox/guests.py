"""How Dockyard names, tags and finds its guests, picks their vmid, and reads their disks and addresses.

A guest made for Dockyard node `node_3f2a9c0b7d1e` is named `dy-3f2a9c0b7d1e` (a DNS name: PVE's `name` and
`hostname` take no `_`) and tagged `dockyard` and `dyn-node_3f2a9c0b7d1e`. The name is given by the clone
itself and the tags by the configuration right after it, so a retried step finds the guest it already made by
either, instead of cloning a second one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.proxmox.resources import ClusterSnapshot, PveGuest
from core.proxmox.spec import VMID_MAX, VMID_MIN, GuestKind

GUEST_TAG = "dockyard"
NODE_TAG_PREFIX = "dyn-"
NAME_PREFIX = "dy-"
LXC_ROOT_DISK = "rootfs"
QEMU_DISKS = re.compile(r"^(scsi|virtio|sata|ide)\d+$")
_SIZE = re.compile(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)(?:,|$)")
_SIZE_FACTORS = {"": 1 / 1024**3, "K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
_QEMU_NET_MODEL = re.compile(
    r"^(?:model=)?(virtio|e1000[\w-]*|rtl8139|vmxnet3|i8255\w+)(?:=([0-9A-Fa-f:]{17}))?$"
)


class GuestLookupError(ValueError):
    """More than one guest claims a Dockyard node: a person must decide which one stays."""


def guest_name(node_id: str) -> str:
    """`dy-<short id>`: the node id without its `node_` prefix, as a DNS label."""
    short = re.sub(r"[^a-z0-9-]+", "-", node_id.lower().removeprefix("node_")).strip("-")
    if not short:
        raise ValueError(f"node id {node_id!r} gives no guest name")
    return (NAME_PREFIX + short)[:63].rstrip("-")


def node_tag(node_id: str) -> str:
    return f"{NODE_TAG_PREFIX}{node_id.lower()}"


def guest_tags(node_id: str, extra: Sequence[str] = ()) -> list[str]:
    """Dockyard's two tags first, then the pool's, each once (PVE compares tags case-insensitively)."""
    tags: dict[str, str] = {}
    for tag in (GUEST_TAG, node_tag(node_id), *extra):
        tags.setdefault(tag.lower(), tag)
    return list(tags.values())


def belongs_to(guest: PveGuest, node_id: str) -> bool:
    """The guest was made for this Dockyard node: tagged `dyn-<node id>`, or (before its tags are set) named
    `dy-<short id>`. Never a template."""
    if guest.template:
        return False
    return node_tag(node_id) in (tag.lower() for tag in guest.tags) or guest.name == guest_name(node_id)


def find_guest(snapshot: ClusterSnapshot, node_id: str) -> PveGuest | None:
    """The guest made for a Dockyard node (`belongs_to`). GuestLookupError when several claim it."""
    found = [guest for guest in snapshot.guests if belongs_to(guest, node_id)]
    if len(found) > 1:
        listed = ", ".join(
            f"{g.kind.value} {g.vmid} on {g.node}" for g in sorted(found, key=lambda g: g.vmid)
        )
        raise GuestLookupError(f"several guests belong to Dockyard node {node_id}: {listed}")
    return found[0] if found else None


def dockyard_guests(snapshot: ClusterSnapshot) -> list[PveGuest]:
    """Every guest tagged `dockyard` (templates excepted), by vmid: what an orphan sweep looks at."""
    return sorted(
        (g for g in snapshot.guests if not g.template and GUEST_TAG in (t.lower() for t in g.tags)),
        key=lambda g: g.vmid,
    )


def choose_vmid(snapshot: ClusterSnapshot, vmid_range: tuple[int, int] | None) -> int | None:
    """The lowest vmid of the range that no guest holds; None when the range is full. Without a range PVE
    chooses (`GET /cluster/nextid`). Either way, two allocations may race for it: the clone of the loser
    fails as VMID_TAKEN and is tried again with a fresh id."""
    if vmid_range is None:
        return None
    first, last = max(vmid_range[0], VMID_MIN), min(vmid_range[1], VMID_MAX)
    taken = {guest.vmid for guest in snapshot.guests}
    return next((vmid for vmid in range(first, last + 1) if vmid not in taken), None)


def parse_vmid(value: object) -> int:
    """A vmid as PVE answers it (`/cluster/nextid` may say `"100"`)."""
    vmid = int(str(value).strip())
    if not VMID_MIN <= vmid <= VMID_MAX:
        raise ValueError(f"vmid {vmid} is outside {VMID_MIN}-{VMID_MAX}")
    return vmid


def root_disk(kind: GuestKind, config: Mapping[str, Any]) -> str:
    """The disk a guest boots from: `rootfs` for LXC; for QEMU the first disk of `boot: order=...`, else
    `bootdisk`, else the first of scsi/virtio/sata/ide present."""
    if kind is GuestKind.LXC:
        return LXC_ROOT_DISK
    boot = str(config.get("boot", ""))
    order = boot.removeprefix("order=").split(",")[0] if boot.startswith("order=") else ""
    for candidate in [*order.split(";"), str(config.get("bootdisk", ""))]:
        if QEMU_DISKS.match(candidate) and candidate in config and not _is_cdrom(config[candidate]):
            return candidate
    disks = sorted(k for k in config if QEMU_DISKS.match(k) and not _is_cdrom(config[k]))
    if not disks:
        raise ValueError("the VM has no disk (scsi, virtio, sata or ide)")
    return next(d for prefix in ("scsi", "virtio", "sata", "ide") for d in disks if d.startswith(prefix))


def _is_cdrom(value: object) -> bool:
    return "media=cdrom" in str(value)


def disk_storage(config: Mapping[str, Any], disk: str) -> str:
    """The storage a disk's volume lives on (`local-lvm:vm-100-disk-0,size=8G` → `local-lvm`)."""
    volume = str(config.get(disk, "")).split(",")[0]
    volume = volume.removeprefix("volume=")
    if ":" not in volume:
        raise ValueError(f"disk {disk} has no storage volume: {config.get(disk)!r}")
    return volume.split(":", 1)[0]


def disk_size_gib(config: Mapping[str, Any], disk: str) -> float | None:
    """The disk's `size=` in GiB, or None when the config does not say."""
    match = _SIZE.search(str(config.get(disk, "")))
    if match is None:
        return None
    return float(match[1]) * _SIZE_FACTORS[match[2]]


def needs_resize(config: Mapping[str, Any], disk: str, disk_gib: int) -> bool:
    """Grow only: PVE cannot shrink a disk, and a disk already as big is left alone (a retried step)."""
    size = disk_size_gib(config, disk)
    return size is None or size < disk_gib


def qemu_mac(net0: object) -> str | None:
    """The MAC address of a QEMU `net0` (`virtio=BC:24:11:00:00:01,bridge=vmbr0`), kept when net0 is set
    again so a retried configuration does not give the VM a new one."""
    for part in str(net0 or "").split(","):
        match = _QEMU_NET_MODEL.match(part)
        if match and match[2]:
            return match[2].upper()
        if part.startswith("macaddr="):
            return part.removeprefix("macaddr=").upper()
    return None


def guest_address(kind: GuestKind, interfaces: object) -> str | None:
    """The first IPv4 address of a running guest (else IPv6) outside `lo`, not link-local, or None.

    LXC (`.../interfaces`): `[{"name", "inet": "10.0.0.5/24", "inet6", ...}]`, `null` while stopped. QEMU
    (`agent/network-get-interfaces`): `{"result": [{"name", "ip-addresses": [{"ip-address", ...}]}]}`.
    """
    if kind is GuestKind.QEMU and isinstance(interfaces, Mapping):
        interfaces = interfaces.get("result")
    if not isinstance(interfaces, list):
        return None
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for interface in interfaces:
        if not isinstance(interface, Mapping) or interface.get("name") == "lo":
            continue
        texts = [interface.get("inet"), interface.get("inet6")]
        texts += [a.get("ip-address") for a in interface.get("ip-addresses") or [] if isinstance(a, Mapping)]
        for text in texts:
            if not text:
                continue
            try:
                address = ipaddress.ip_interface(str(text)).ip
            except ValueError:
                continue
            if not (address.is_link_local or address.is_unspecified):
                found.append(address)
    # IPv4 first; a loopback address on a real interface (the PVE simulator's guests) only after the others.
    found.sort(key=lambda address: (address.is_loopback, address.version))
    return str(found[0]) if found else None
