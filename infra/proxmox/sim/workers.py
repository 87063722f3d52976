"""What the guest handlers share: forking a worker that holds the guest's config lock, finding the guest
of a request, config values and new MAC addresses."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

from infra.proxmox.sim.base import Context, PveError
from infra.proxmox.sim.cluster import Guest
from infra.proxmox.sim.tasks import TaskFailure, TaskRun

NEW_DISK = re.compile(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(\d+(?:\.\d+)?)(?:,(.*))?", re.IGNORECASE)
DISK_KEY = re.compile(r"(rootfs|mp\d+|scsi\d+|virtio\d+|sata\d+|ide\d+|efidisk0|tpmstate0)")


def task_type(guest_kind: str, action: str) -> str:
    return ("vz" if guest_kind == "lxc" else "qm") + action


def guest_task(
    ctx: Context, guest: Guest, action: str, work: Callable[[TaskRun], None], lock: bool = True
) -> str:
    """Fork a worker that takes the guest's config lock (as PVE's workers do) and runs `work`."""
    cluster = ctx.sim.cluster

    def run(task: TaskRun) -> None:
        if not lock:
            work(task)
            return
        try:
            with cluster.config_lock(guest):
                work(task)
        except PveError as error:
            raise TaskFailure(error.message) from None

    kind = action if action in ("resize",) else task_type(guest.kind, action)
    return ctx.sim.tasks.start(guest.node, kind, str(guest.vmid), ctx.user, run)


def find_guest(ctx: Context, kind: str) -> Guest:
    return ctx.sim.cluster.guest(ctx.node, kind, ctx.vmid)


def config_value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def mac_address() -> str:
    return "BC:24:11:" + ":".join(f"{byte:02X}" for byte in secrets.token_bytes(3))
