"""The simulated cluster's state: nodes, storage, volumes, guests with their configs, locks and digests.

A cluster file (JSON, `--cluster`) replaces any part of `DEFAULT_CLUSTER`. Storage marked `shared` is
one pool seen by every node (Ceph RBD here): templates live there, so a clone may `target` any node.
Other storage is per node: `local-lvm` on pve2 is not `local-lvm` on pve1, and a guest whose disks
are there cannot be cloned to another node. Every change happens under `Cluster.lock`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.proxmox.sim.base import fail
from infra.proxmox.sim.faults import Faults
from infra.proxmox.sim.formats import parse_size

GiB = 2**30
CONFIG_LOCK_TIMEOUT_SECONDS = 10  # PVE's lock_config waits 10 s for the flock

DEFAULT_CLUSTER: dict[str, Any] = {
    "name": "dockyard-sim",
    "nodes": [
        {
            "node": f"pve{i}",
            "maxcpu": 16,
            "maxmem": 64 * GiB,
            "maxdisk": 100 * GiB,
            "ip": f"10.10.10.{10 + i}",
        }
        for i in (1, 2, 3)
    ],
    "storage": [
        {
            "storage": "local",
            "type": "dir",
            "content": "backup,iso,snippets,vztmpl",
            "shared": False,
            "size": "100G",
        },
        {
            "storage": "local-lvm",
            "type": "lvmthin",
            "content": "images,rootdir",
            "shared": False,
            "size": "500G",
        },
        {"storage": "ceph-vm", "type": "rbd", "content": "images,rootdir", "shared": True, "size": "2T"},
    ],
    "templates": [
        {
            "vmid": 9000,
            "type": "lxc",
            "node": "pve1",
            "config": {
                "arch": "amd64",
                "cores": 2,
                "memory": 2048,
                "swap": 512,
                "hostname": "dockyard-node-lxc",
                "ostype": "debian",
                "unprivileged": 1,
                "features": "keyctl=1,nesting=1",
                "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:90:00,ip=dhcp,type=veth",
                "rootfs": "ceph-vm:base-9000-disk-0,size=8G",
                "template": 1,
                "description": "Dockyard node (LXC): dockyard agent + Docker Engine\n",
            },
        },
        {
            "vmid": 9001,
            "type": "qemu",
            "node": "pve1",
            "config": {
                "name": "dockyard-node-vm",
                "agent": "1",
                "boot": "order=scsi0",
                "cores": 2,
                "memory": 4096,
                "cpu": "x86-64-v2-AES",
                "ostype": "l26",
                "scsihw": "virtio-scsi-single",
                "net0": "virtio=BC:24:11:00:90:01,bridge=vmbr0",
                "scsi0": "ceph-vm:base-9001-disk-0,size=16G",
                "ide2": "ceph-vm:vm-9001-cloudinit,media=cdrom",
                "ipconfig0": "ip=dhcp",
                "serial0": "socket",
                "vga": "serial0",
                "template": 1,
                "description": "Dockyard node (VM): cloud-init, qemu-guest-agent, dockyard-join.path\n",
            },
        },
    ],
    "users": {"root@pam": None},  # None: a generated password
    "tokens": {"root@pam!dockyard": {"secret": None}},  # None: a generated secret
    "addresses": {"first": "127.0.2.1", "last": "127.0.2.254"},
    "first_vmid": 100,
}

DISK_KEYS = ("rootfs", "scsi", "virtio", "sata", "ide", "mp", "efidisk", "tpmstate")


@dataclass
class Node:
    name: str
    maxcpu: int
    maxmem: int
    maxdisk: int
    ip: str
    nodeid: int
    online: bool = True
    booted_at: float = field(default_factory=time.time)


@dataclass
class Storage:
    name: str
    type: str
    content: str
    shared: bool
    size: int


@dataclass
class Guest:
    vmid: int
    kind: str  # lxc | qemu
    node: str
    config: dict[str, Any]
    address: str | None = None
    status: str = "stopped"
    started_at: float | None = None
    agent_ready_at: float | None = None  # qemu: when the guest agent answers
    files: dict[str, bytes] = field(default_factory=dict)  # qemu: what agent/file-write wrote
    exec_results: dict[int, dict[str, Any]] = field(default_factory=dict)
    cloudinit_applied: dict[str, Any] = field(default_factory=dict)
    busy: threading.Lock = field(default_factory=threading.Lock, repr=False)  # the config flock

    @property
    def label(self) -> str:
        return "CT" if self.kind == "lxc" else "VM"

    @property
    def name(self) -> str:
        return str(self.config.get("hostname" if self.kind == "lxc" else "name", f"{self.label}{self.vmid}"))

    @property
    def template(self) -> bool:
        return bool(int(self.config.get("template", 0)))

    @property
    def lock(self) -> str | None:
        return self.config.get("lock")

    @property
    def config_path(self) -> str:
        return f"nodes/{self.node}/{'lxc' if self.kind == 'lxc' else 'qemu-server'}/{self.vmid}.conf"

    @property
    def lock_file(self) -> str:
        if self.kind == "lxc":
            return f"/run/lock/lxc/pve-config-{self.vmid}.lock"
        return f"/var/lock/qemu-server/lock-{self.vmid}.conf"

    def digest(self) -> str:
        return hashlib.sha1(render_config(self.config).encode()).hexdigest()

    def disks(self) -> dict[str, str]:
        """Config keys holding a volume (not cdrom media) -> the volume id."""
        found = {}
        for key, value in self.config.items():
            if key.rstrip("0123456789") in DISK_KEYS and "media=cdrom" not in str(value):
                found[key] = str(value).split(",")[0].removeprefix("volume=").removeprefix("file=")
        return found

    def disk_size(self, key: str) -> int:
        for part in str(self.config[key]).split(","):
            if part.startswith("size="):
                return parse_size(part[5:]) or 0
        return 0

    def maxmem(self) -> int:
        return int(self.config.get("memory", 512)) * 2**20

    def maxcpu(self) -> int:
        return int(self.config.get("cores", 1)) * int(self.config.get("sockets", 1))


def render_config(config: dict[str, Any]) -> str:
    """The config file's text, as PVE writes it: description as comments first, then key: value."""
    lines = [f"#{line}" for line in str(config.get("description", "")).splitlines()]
    lines += [f"{key}: {value}" for key, value in sorted(config.items()) if key != "description"]
    return "\n".join(lines) + "\n"


class AddressPool:
    """Loopback addresses for guests (their 'DHCP leases'), from `first` to `last`."""

    def __init__(self, first: str, last: str) -> None:
        start, end = ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
        if not start.is_loopback or not end.is_loopback:
            raise ValueError("guest addresses must be loopback addresses (127.0.0.0/8)")
        self._free = [str(ipaddress.IPv4Address(n)) for n in range(int(start), int(end) + 1)]

    def take(self) -> str:
        if not self._free:
            raise fail("no free guest address left in the simulator's range")
        return self._free.pop(0)

    def give_back(self, address: str) -> None:
        self._free.insert(0, address)


class Cluster:
    def __init__(self, spec: dict[str, Any], faults: Faults) -> None:
        self.spec = spec
        self.faults = faults
        self.lock = threading.RLock()
        self.name = str(spec["name"])
        self.nodes = {
            n["node"]: Node(n["node"], n["maxcpu"], n["maxmem"], n.get("maxdisk", 100 * GiB), n["ip"], i + 1)
            for i, n in enumerate(spec["nodes"])
        }
        self.storage = {
            s["storage"]: Storage(s["storage"], s["type"], s["content"], bool(s["shared"]), _size(s["size"]))
            for s in spec["storage"]
        }
        self.guests: dict[int, Guest] = {}
        self.volumes: dict[tuple[str, str | None, str], int] = {}  # (storage, node|None, volname) -> bytes
        self.addresses = AddressPool(spec["addresses"]["first"], spec["addresses"]["last"])
        self.first_vmid = int(spec.get("first_vmid", 100))
        self.users = {user: password or secrets.token_urlsafe(18) for user, password in spec["users"].items()}
        self.tokens = {
            token: {**entry, "secret": entry.get("secret") or secrets.token_hex(16)}
            for token, entry in spec["tokens"].items()
        }
        for template in spec["templates"]:
            guest = Guest(int(template["vmid"]), template["type"], template["node"], dict(template["config"]))
            self.add_guest(guest)
            for key, volume in guest.disks().items():
                self.add_volume(guest.node, volume, guest.disk_size(key))

    @classmethod
    def from_file(cls, path: Path | None, faults: Faults) -> Cluster:
        spec = copy.deepcopy(DEFAULT_CLUSTER)
        if path is not None:
            spec.update(json.loads(path.read_text()))
        return cls(spec, faults)

    # --- guests -------------------------------------------------------------------------------------------

    def add_guest(self, guest: Guest) -> None:
        self.guests[guest.vmid] = guest

    def guest(self, node: str, kind: str, vmid: int) -> Guest:
        """The guest as PVE finds it: by its config file on `node`."""
        guest = self.guests.get(vmid)
        if guest is None or guest.node != node or guest.kind != kind:
            path = f"nodes/{node}/{'lxc' if kind == 'lxc' else 'qemu-server'}/{vmid}.conf"
            raise fail(f"Configuration file '{path}' does not exist")
        return guest

    def check_unused(self, vmid: int) -> None:
        if (guest := self.guests.get(vmid)) is not None:
            raise fail(f"{guest.label} {vmid} already exists on node '{guest.node}'")

    def next_free_vmid(self) -> int:
        vmid = self.first_vmid
        while vmid in self.guests:
            vmid += 1
        return vmid

    @staticmethod
    def check_lock(guest: Guest) -> None:
        if guest.lock:
            raise fail(f"{guest.label} is locked ({guest.lock})")

    @contextlib.contextmanager
    def config_lock(self, guest: Guest) -> Iterator[None]:
        """PVE's lock_config: a flock on the guest's lock file, waited for, then `got timeout`."""
        if self.faults.lock_contended(guest.vmid):
            time.sleep(self.faults.lock_wait_seconds)
            raise fail(f"can't lock file '{guest.lock_file}' - got timeout")
        if not guest.busy.acquire(timeout=CONFIG_LOCK_TIMEOUT_SECONDS):
            raise fail(f"can't lock file '{guest.lock_file}' - got timeout")
        try:
            yield
        finally:
            guest.busy.release()

    # --- storage ------------------------------------------------------------------------------------------

    def storage_on(self, name: str, node: str) -> Storage:
        if (storage := self.storage.get(name)) is None:
            raise fail(f"storage '{name}' does not exist")
        return storage

    def volume_key(self, node: str, volume_id: str) -> tuple[str, str | None, str]:
        storage, _, volname = volume_id.partition(":")
        shared = self.storage_on(storage, node).shared
        return (storage, None if shared else node, volname)

    def add_volume(self, node: str, volume_id: str, size: int) -> None:
        self.volumes[self.volume_key(node, volume_id)] = size

    def remove_volume(self, node: str, volume_id: str) -> None:
        self.volumes.pop(self.volume_key(node, volume_id), None)

    def used(self, storage: str, node: str) -> int:
        shared = self.storage[storage].shared
        return sum(
            size
            for (name, owner, _), size in self.volumes.items()
            if name == storage and (shared or owner == node)
        )

    def free(self, storage: str, node: str) -> int:
        return self.storage[storage].size - self.used(storage, node)


def _size(value: Any) -> int:
    return int(value) if isinstance(value, int) else parse_size(str(value)) or 0
