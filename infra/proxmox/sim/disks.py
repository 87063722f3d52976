"""Disks: new volumes from `STORAGE:SIZE_GiB` values, resize, and conversion to a template (volumes
renamed `base-ID-disk-N`, as linked clones need)."""

from __future__ import annotations

import re
from typing import Any

from infra.proxmox.sim.base import Context, fail
from infra.proxmox.sim.cluster import Guest
from infra.proxmox.sim.formats import format_size, parse_size
from infra.proxmox.sim.tasks import TaskFailure, TaskRun
from infra.proxmox.sim.workers import NEW_DISK, find_guest, guest_task


def allocate_disks(ctx: Context, guest: Guest, disks: dict[str, Any]) -> None:
    """`STORAGE:SIZE_GiB` values become new volumes `STORAGE:vm-ID-disk-N,size=SIZE` (under the lock)."""
    cluster = ctx.sim.cluster
    for key, value in disks.items():
        found = NEW_DISK.fullmatch(str(value))
        if found is None:
            continue
        storage_name, size = found[1], int(float(found[2]) * 2**30)
        cluster.storage_on(storage_name, guest.node)
        if cluster.faults.storage_full(storage_name) or cluster.free(storage_name, guest.node) < size:
            raise fail(
                f"unable to allocate {format_size(size)} on storage '{storage_name}': No space left on device"
            )
        used = {volume.split(":", 1)[-1] for volume in guest.disks().values()}
        index = next(n for n in range(1000) if f"vm-{guest.vmid}-disk-{n}" not in used)
        volume = f"{storage_name}:vm-{guest.vmid}-disk-{index}"
        rest = f",{found[3]}" if found[3] else ""
        guest.config[key] = f"{volume}{rest},size={format_size(size)}"
        cluster.add_volume(guest.node, volume, size)


def resize(ctx: Context, kind: str) -> str:
    cluster, params = ctx.sim.cluster, ctx.params
    with cluster.lock:
        guest = find_guest(ctx, kind)
        if (digest := params.get("digest")) and digest != guest.digest():
            raise fail("detected modified configuration - file changed by other user? Try again.")
        if not params.get("skiplock"):
            cluster.check_lock(guest)
        disk = str(params["disk"])
        if disk not in guest.disks():
            raise fail(
                f"unable to parse config of disk '{disk}'"
                if kind == "lxc"
                else f"disk '{disk}' does not exist"
            )
        current, size = guest.disk_size(disk), str(params["size"])
        wanted = current + (parse_size(size[1:]) or 0) if size.startswith("+") else parse_size(size) or 0
        if wanted < current:
            raise fail("unable to shrink disk size")
        volume = guest.disks()[disk]
        storage = volume.split(":", 1)[0]

    def work(task: TaskRun) -> None:
        task.log(
            f"Size of logical volume {volume} changed from {format_size(current)} to {format_size(wanted)}"
        )
        task.sleep(ctx.sim.timing.resize)
        with cluster.lock:
            if cluster.faults.storage_full(storage) or cluster.free(storage, guest.node) < wanted - current:
                raise TaskFailure(f"resize failed: {storage}: No space left on device")
            value = re.sub(r"size=[^,]+", f"size={format_size(wanted)}", str(guest.config[disk]))
            guest.config[disk] = value if "size=" in value else f"{value},size={format_size(wanted)}"
            cluster.add_volume(guest.node, volume, wanted)

    return guest_task(ctx, guest, "resize", work)


def _to_template(ctx: Context, guest: Guest) -> None:
    cluster = ctx.sim.cluster
    with cluster.lock:
        for key, volume in guest.disks().items():
            base = volume.replace(f":vm-{guest.vmid}-", f":base-{guest.vmid}-")
            size = guest.disk_size(key)
            cluster.remove_volume(guest.node, volume)
            cluster.add_volume(guest.node, base, size)
            guest.config[key] = str(guest.config[key]).replace(volume, base)
        guest.config["template"] = 1


def template(ctx: Context, kind: str) -> str | None:
    with ctx.sim.cluster.lock:
        guest = find_guest(ctx, kind)
        ctx.sim.cluster.check_lock(guest)
        if guest.status == "running":
            raise fail(f"you can't convert a {'CT' if kind == 'lxc' else 'VM'} to template if it's running")
    if kind == "lxc":
        with ctx.sim.cluster.config_lock(guest):
            _to_template(ctx, guest)
        return None
    return guest_task(ctx, guest, "template", lambda task: _to_template(ctx, guest))
