"""Cloning a guest (`POST .../clone`), with PVE's locking:

- LXC: the source is locked `disk` for the whole clone, so a second clone of the same template fails
  at once with `CT is locked (disk)`; the new CT exists from the start, locked `create`.
- QEMU: clones of a template run in parallel; the new VM exists from the start, locked `clone`.

A template's disks are on shared storage, so `target` may name any node. A linked clone (the default
for templates) shares the template's base volume (`base-9000-disk-0/vm-100-disk-0`); a full clone
copies every disk (to `storage`, or next to the source) and takes longer. A clone that fails (disk
full) removes what it made, new volumes and config, and the task ends `TASK ERROR: clone failed: ...`.
"""

from __future__ import annotations

import re
from typing import Any

from infra.proxmox.sim.base import Context, fail
from infra.proxmox.sim.cluster import Guest
from infra.proxmox.sim.formats import format_size
from infra.proxmox.sim.tasks import TaskFailure, TaskRun
from infra.proxmox.sim.workers import mac_address, task_type

CONTENT = {"lxc": ("rootdir", "container directories"), "qemu": ("images", "VM images")}


def clone(ctx: Context, kind: str) -> str:
    sim, params = ctx.sim, ctx.params
    cluster = sim.cluster
    newid = int(params["newid"])
    source = cluster.guest(ctx.node, kind, ctx.vmid)
    target = str(params.get("target") or ctx.node)
    full = bool(params["full"]) if "full" in params else not source.template
    storage = params.get("storage")
    _check_request(ctx, kind, source, target, full, storage)
    with cluster.config_lock(source), cluster.lock:
        cluster.check_unused(newid)
        cluster.check_lock(source)
        if "snapname" in params:
            raise fail(f"snapshot '{params['snapname']}' does not exist")
        disks = _new_disks(source, newid, full, storage)
        config = {key: value for key, value in source.config.items() if key not in ("template", "lock")}
        config |= {key: value for key, (_, value, _) in disks.items()}
        config["lock"] = "create" if kind == "lxc" else "clone"
        if kind == "lxc":
            config["hostname"] = params.get("hostname", source.config.get("hostname", f"CT{newid}"))
        else:
            config["name"] = params.get("name", f"Copy-of-VM-{source.name}")
        if "description" in params:
            config["description"] = params["description"]
        for key, value in list(config.items()):
            if re.fullmatch(r"net\d+", key):
                config[key] = _new_mac(str(value), mac_address())
        new = Guest(newid, kind, target, config, address=cluster.addresses.take())
        cluster.add_guest(new)
        if kind == "lxc" or not source.template:
            source.config["lock"] = "disk" if kind == "lxc" else "clone"

    def work(task: TaskRun) -> None:
        try:
            _copy(ctx, task, source, new, disks, full)
        except TaskFailure as failure:
            with cluster.lock:
                cluster.guests.pop(newid, None)
                for _, volume, _ in disks.values():
                    cluster.remove_volume(target, volume.split(",")[0])
                cluster.addresses.give_back(str(new.address))
            raise TaskFailure(f"clone failed: {failure}") from None
        finally:
            with cluster.lock:
                if source.config.get("lock") in ("disk", "clone"):
                    source.config.pop("lock")

    return sim.tasks.start(ctx.node, task_type(kind, "clone"), str(source.vmid), ctx.user, work)


def _check_request(ctx: Context, kind: str, source: Guest, target: str, full: bool, storage: Any) -> None:
    cluster = ctx.sim.cluster
    if not full and not source.template:
        raise fail("Linked clone feature is not supported for non-template guests")
    if not full and storage is not None:
        raise fail("parameter 'storage' not allowed for linked clones")
    if not full and ctx.params.get("format") is not None:
        raise fail("parameter 'format' not allowed for linked clones")
    if "pool" in ctx.params and ctx.params["pool"] not in cluster.spec.get("pools", []):
        raise fail(f"pool '{ctx.params['pool']}' does not exist")
    if target not in cluster.nodes:
        raise fail(f"no such cluster node '{target}'")
    if target in ctx.sim.faults.offline_nodes:
        raise fail(f"target node '{target}' is not online")
    if storage is not None:
        found = cluster.storage_on(str(storage), target)
        content, words = CONTENT[kind]
        if content not in found.content.split(","):
            raise fail(f"storage '{storage}' does not support {words}")
    if target != ctx.node:
        for volume in source.disks().values():
            if not cluster.storage_on(volume.split(":")[0], ctx.node).shared:
                raise fail(
                    f"can't clone {source.label} to node '{target}' ({source.label} uses local storage)"
                )


def _new_disks(source: Guest, newid: int, full: bool, storage: Any) -> dict[str, tuple[str, str, int]]:
    """Config key -> (source volume, new config value, bytes allocated) for every disk of the source."""
    disks: dict[str, tuple[str, str, int]] = {}
    for index, (key, volume) in enumerate(sorted(source.disks().items())):
        source_storage, _, volname = volume.partition(":")
        size = source.disk_size(key)
        if full:
            new_volume = f"{storage or source_storage}:vm-{newid}-disk-{index}"
        else:
            new_volume = f"{source_storage}:{volname}/vm-{newid}-disk-{index}"
        options = str(source.config[key]).split(",")[1:]
        disks[key] = (volume, ",".join([new_volume, *options]), size if full else 0)
    for key, value in source.config.items():
        if "cloudinit" in str(value):  # a VM's cloud-init drive is made again, not copied
            drive_storage = storage or str(value).split(":")[0]
            disks[key] = ("", f"{drive_storage}:vm-{newid}-cloudinit,media=cdrom", 4 * 2**20)
    return disks


def _copy(ctx: Context, task: TaskRun, source: Guest, new: Guest, disks: dict[str, Any], full: bool) -> None:
    cluster, timing = ctx.sim.cluster, ctx.sim.timing
    seconds = timing.full_clone if full else timing.linked_clone
    for key, (volume, value, size) in disks.items():
        if volume:
            task.log(f"create {'full' if full else 'linked'} clone of drive {key} ({volume})")
        target_storage = value.split(":")[0]
        task.sleep(seconds / max(1, len(disks)) / 2)
        with cluster.lock:
            if cluster.faults.storage_full(target_storage) or cluster.free(target_storage, new.node) < size:
                task.log(
                    f'  Volume group "{target_storage}" has insufficient free space '
                    f"({format_size(size)} wanted)"
                )
                raise TaskFailure(f"write error on '{target_storage}': No space left on device")
            cluster.add_volume(new.node, value.split(",")[0], size)
        if full and volume:
            for percent in (25, 50, 75, 100):
                task.log(
                    f"transferred {format_size(size * percent // 100)} of {format_size(size)} ({percent}.00%)"
                )
        task.sleep(seconds / max(1, len(disks)) / 2)
    with cluster.lock:
        new.config.pop("lock", None)


def _new_mac(net: str, mac: str) -> str:
    return re.sub(r"(hwaddr|virtio|e1000|vmxnet3|rtl8139|macaddr)=[0-9A-Fa-f:]{17}", rf"\g<1>={mac}", net)
