"""LXC containers and QEMU VMs: list, create, config, status, start/stop/shutdown/reboot, destroy, resize
and template. The same handlers serve both kinds, with PVE's words for each (`CT 100` / `VM 100`).

Checks PVE makes before forking a worker fail the call at once (500 `CT 100 already running`); what
happens inside the worker (taking the config lock, the work itself) ends the task instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from infra.proxmox.sim import clone, disks
from infra.proxmox.sim.api_agent import boot_guest
from infra.proxmox.sim.api_cluster import guest_usage
from infra.proxmox.sim.base import Context, fail, route
from infra.proxmox.sim.cluster import Guest
from infra.proxmox.sim.disks import allocate_disks
from infra.proxmox.sim.tasks import TaskFailure, TaskRun
from infra.proxmox.sim.workers import DISK_KEY, config_value, find_guest, guest_task

KINDS = ("lxc", "qemu")
NOT_CONFIG = {
    "node",
    "vmid",
    "digest",
    "delete",
    "revert",
    "skiplock",
    "background_delay",
    "force",
    "start",
    "storage",
    "password",
    "ssh-public-keys",
    "ostemplate",
    "restore",
    "ignore-unpack-errors",
    "bwlimit",
    "pool",
    "unique",
    "archive",
    "live-restore",
}
# --- list, create, index, destroy


def list_guests(ctx: Context, kind: str) -> list[dict[str, Any]]:
    with ctx.sim.cluster.lock:
        guests = [g for g in ctx.sim.cluster.guests.values() if g.node == ctx.node and g.kind == kind]
        listed = []
        for guest in sorted(guests, key=lambda g: g.vmid):
            usage = guest_usage(ctx, guest)
            entry: dict[str, Any] = {
                "vmid": guest.vmid,
                "name": guest.name,
                "status": guest.status,
                "cpus": usage["maxcpu"],
                **usage,
            }
            entry.pop("maxcpu")
            if kind == "lxc":
                entry["type"] = "lxc"
            for key in ("lock", "tags"):
                if key in guest.config:
                    entry[key] = guest.config[key]
            if guest.template:
                entry["template"] = 1
            listed.append(entry)
        return listed


def create_guest(ctx: Context, kind: str) -> str:
    cluster, params = ctx.sim.cluster, ctx.params
    with cluster.lock:
        cluster.check_unused(ctx.vmid)
        config = {key: config_value(v) for key, v in params.items() if key not in NOT_CONFIG}
        if kind == "lxc":
            config.setdefault("rootfs", f"{params.get('storage', 'local')}:4")
            config.setdefault("hostname", f"CT{ctx.vmid}")
            config.setdefault("memory", 512)
            config.setdefault("swap", 512)
            config["ostype"] = config.get("ostype", "debian")
        guest = Guest(
            ctx.vmid, kind, ctx.node, {**config, "lock": "create"}, address=cluster.addresses.take()
        )
        allocate_disks(ctx, guest, {k: v for k, v in config.items() if DISK_KEY.fullmatch(k)})
        cluster.add_guest(guest)
    start_after = bool(params.get("start"))

    def work(task: TaskRun) -> None:
        task.sleep(ctx.sim.timing.create)
        with cluster.lock:
            guest.config.pop("lock", None)
        if start_after:
            _start(ctx, guest, task)

    return guest_task(ctx, guest, "create", work, lock=False)


def guest_index(ctx: Context, kind: str) -> list[dict[str, str]]:
    find_guest(ctx, kind)
    names = ["config", "status", "clone", "resize", "template", "snapshot", "rrd", "rrddata", "firewall"]
    names += ["interfaces"] if kind == "lxc" else ["agent", "cloudinit", "pending"]
    return [{"subdir": name} for name in names]


def destroy_guest(ctx: Context, kind: str) -> str:
    cluster = ctx.sim.cluster
    with cluster.lock:
        guest = find_guest(ctx, kind)
        if not ctx.params.get("skiplock"):
            cluster.check_lock(guest)
        force = bool(ctx.params.get("force"))
        if guest.status == "running" and not force:
            raise fail(f"{guest.label} {guest.vmid} is running - destroy failed")

    def work(task: TaskRun) -> None:
        if guest.status == "running":
            task.log("stopping container before destroy" if kind == "lxc" else "stopping VM")
            ctx.sim.agents.stop(guest.vmid, graceful=False)
            guest.status = "stopped"
        task.sleep(ctx.sim.timing.destroy)
        with cluster.lock:
            for volume in guest.disks().values():
                if any(
                    f"{volume.split(':', 1)[1]}/" in v
                    for g in cluster.guests.values()
                    for v in g.disks().values()
                ):
                    raise TaskFailure(f"base volume '{volume}' is still in use by linked cloned")
            for volume in guest.disks().values():
                task.log(f"Removing image: 100% complete...done. ({volume})")
                cluster.remove_volume(guest.node, volume)
            cluster.guests.pop(guest.vmid, None)
            if guest.address:
                cluster.addresses.give_back(guest.address)
        ctx.sim.agents.destroy(guest.vmid)

    return guest_task(ctx, guest, "destroy", work)


# --- config


def get_config(ctx: Context, kind: str) -> dict[str, Any]:
    with ctx.sim.cluster.lock:
        guest = find_guest(ctx, kind)
        return {**guest.config, "digest": guest.digest()}


def update_config(ctx: Context, guest: Guest, params: dict[str, Any]) -> None:
    """PUT/POST config: digest, lock, then deletions and new values (new disks allocated)."""
    cluster = ctx.sim.cluster
    with cluster.lock:
        if (digest := params.get("digest")) and digest != guest.digest():
            raise fail("detected modified configuration - file changed by other user? Try again.")
        if not params.get("skiplock"):
            cluster.check_lock(guest)
        values = {key: config_value(v) for key, v in params.items() if key not in NOT_CONFIG}
        deleted = [key for key in re.split(r"[,;\s\0]+", str(params.get("delete", ""))) if key]
        for key in deleted:
            if key in values:
                raise fail(f"unable to delete '{key}' - option is also set")
        for key in deleted:
            guest.config.pop(key, None)
        allocate_disks(ctx, guest, {k: v for k, v in values.items() if DISK_KEY.fullmatch(k)})
        guest.config.update(
            {k: v for k, v in values.items() if not DISK_KEY.fullmatch(k) or k not in guest.config}
        )


def put_config(ctx: Context, kind: str) -> None:
    guest = find_guest(ctx, kind)
    with ctx.sim.cluster.config_lock(guest):
        update_config(ctx, guest, ctx.params)


def post_config(ctx: Context) -> str:
    guest = find_guest(ctx, "qemu")
    ctx.sim.cluster.check_lock(guest)
    return guest_task(ctx, guest, "config", lambda task: update_config(ctx, guest, ctx.params))


# --- status


def current_status(ctx: Context, kind: str) -> dict[str, Any]:
    with ctx.sim.cluster.lock:
        guest = find_guest(ctx, kind)
        usage = guest_usage(ctx, guest)
    status: dict[str, Any] = {
        "vmid": guest.vmid,
        "name": guest.name,
        "status": guest.status,
        "cpus": usage.pop("maxcpu"),
        **usage,
        "ha": {"managed": 0},
    }
    if kind == "lxc":
        status |= {"type": "lxc", "maxswap": int(guest.config.get("swap", 512)) * 2**20, "swap": 0}
    else:
        status |= {"qmpstatus": guest.status, "agent": 1 if _agent_enabled(guest) else 0}
        if guest.status == "running":
            status |= {"running-qemu": "10.1.2", "running-machine": "pc-i440fx-10.1+pve0"}
    if guest.status == "running" and (agent := ctx.sim.agents.view(guest.vmid)) and agent.get("pid"):
        status["pid"] = agent["pid"]
    for key in ("lock", "tags"):
        if key in guest.config:
            status[key] = guest.config[key]
    if guest.template:
        status["template"] = 1
    return status


def _agent_enabled(guest: Guest) -> bool:
    first = str(guest.config.get("agent", "0")).split(",")[0]
    return first.removeprefix("enabled=") in ("1", "on", "yes", "true")


def _start(ctx: Context, guest: Guest, task: TaskRun) -> None:
    task.sleep(ctx.sim.timing.start)
    with ctx.sim.cluster.lock:
        guest.status, guest.started_at = "running", time.time()
    boot_guest(ctx.sim, guest)


def start(ctx: Context, kind: str) -> str:
    with ctx.sim.cluster.lock:
        guest = find_guest(ctx, kind)
        if not ctx.params.get("skiplock"):
            ctx.sim.cluster.check_lock(guest)
        if guest.template:
            raise fail(f"you can't start a {'CT' if kind == 'lxc' else 'vm'} if it's a template")
        if guest.status == "running":
            raise fail(f"{guest.label} {guest.vmid} already running")
    return guest_task(ctx, guest, "start", lambda task: _start(ctx, guest, task))


def _halt(ctx: Context, guest: Guest, task: TaskRun, seconds: float, graceful: bool) -> None:
    task.sleep(seconds)
    ctx.sim.agents.stop(guest.vmid, graceful=graceful)
    with ctx.sim.cluster.lock:
        guest.status, guest.started_at, guest.agent_ready_at = "stopped", None, None


def stop(ctx: Context, kind: str, action: str) -> str:
    timing = ctx.sim.timing
    with ctx.sim.cluster.lock:
        guest = find_guest(ctx, kind)
        if not ctx.params.get("skiplock"):
            ctx.sim.cluster.check_lock(guest)
        if guest.status != "running" and (kind == "lxc" or action != "stop"):
            raise fail(f"{guest.label} {guest.vmid} not running")
    if action == "stop":
        work = lambda task: _halt(ctx, guest, task, timing.stop, graceful=False)  # noqa: E731
    elif action == "shutdown":
        work = lambda task: _halt(ctx, guest, task, timing.shutdown, graceful=True)  # noqa: E731
    else:

        def work(task: TaskRun) -> None:
            _halt(ctx, guest, task, timing.shutdown, graceful=True)
            _start(ctx, guest, task)

    return guest_task(ctx, guest, action, work)


def _register() -> None:
    for kind in KINDS:
        base = f"/nodes/{{node}}/{kind}"

        def bind(handler: Callable[..., Any], *args: Any) -> Callable[[Context], Any]:
            return lambda ctx: handler(ctx, *args)

        route("GET", base)(bind(list_guests, kind))
        route("POST", base)(bind(create_guest, kind))
        route("GET", f"{base}/{{vmid}}")(bind(guest_index, kind))
        route("DELETE", f"{base}/{{vmid}}")(bind(destroy_guest, kind))
        route("POST", f"{base}/{{vmid}}/clone")(bind(clone.clone, kind))
        route("GET", f"{base}/{{vmid}}/config")(bind(get_config, kind))
        route("PUT", f"{base}/{{vmid}}/config")(bind(put_config, kind))
        route("GET", f"{base}/{{vmid}}/status/current")(bind(current_status, kind))
        route("POST", f"{base}/{{vmid}}/status/start")(bind(start, kind))
        for action in ("stop", "shutdown", "reboot"):
            route("POST", f"{base}/{{vmid}}/status/{action}")(bind(stop, kind, action))
        route("PUT", f"{base}/{{vmid}}/resize")(bind(disks.resize, kind))
        route("POST", f"{base}/{{vmid}}/template")(bind(disks.template, kind))
    route("POST", "/nodes/{node}/qemu/{vmid}/config")(post_config)


_register()
