"""Cluster-wide and per-node endpoints: version, access ticket, cluster status/resources/nextid, nodes,
storage and tasks. Figures are live: guests' memory from their agent processes, storage from volumes."""

from __future__ import annotations

import os
import time
from typing import Any

from infra.proxmox.sim.base import Context, fail, parameter_error, route
from infra.proxmox.sim.cluster import Guest, Node

VERSION = {"version": "9.1.3", "release": "9.1", "repoid": "a1b2c3d4e5f60718", "console": "xtermjs"}


@route("GET", "/version")
def version(ctx: Context) -> dict[str, Any]:
    return dict(VERSION)


@route("GET", "/access/ticket")
def ticket_page(ctx: Context) -> None:
    return None


@route("POST", "/access/ticket")
def create_ticket(ctx: Context) -> dict[str, str]:
    params = ctx.params
    return ctx.sim.auth.login(str(params["username"]), str(params["password"]), params.get("realm"))


# --- cluster


@route("GET", "/cluster/status")
def cluster_status(ctx: Context) -> list[dict[str, Any]]:
    cluster, offline = ctx.sim.cluster, ctx.sim.faults.offline_nodes
    quorate = 0 if ctx.sim.faults.no_quorum else 1
    entries: list[dict[str, Any]] = [
        {
            "type": "cluster",
            "id": "cluster",
            "name": cluster.name,
            "nodes": len(cluster.nodes),
            "quorate": quorate,
            "version": 3,
        }
    ]
    for index, node in enumerate(cluster.nodes.values()):
        entries.append(
            {
                "type": "node",
                "id": f"node/{node.name}",
                "name": node.name,
                "nodeid": node.nodeid,
                "ip": node.ip,
                "online": 0 if node.name in offline else 1,
                "local": 1 if index == 0 else 0,
                "level": "",
            }
        )
    return entries


@route("GET", "/cluster/resources")
def cluster_resources(ctx: Context) -> list[dict[str, Any]]:
    kind = ctx.params.get("type")
    sim = ctx.sim
    found: list[dict[str, Any]] = []
    with sim.cluster.lock:
        if kind in (None, "vm"):
            found += [vm_resource(ctx, guest) for guest in sorted(sim.cluster.guests.values(), key=_vmid)]
        if kind in (None, "node"):
            found += [node_resource(ctx, node) for node in sim.cluster.nodes.values()]
        if kind in (None, "storage"):
            for node in sim.cluster.nodes.values():
                for storage in sim.cluster.storage.values():
                    entry = storage_entry(ctx, storage.name, node.name)
                    found.append(
                        {
                            "id": f"storage/{node.name}/{storage.name}",
                            "type": "storage",
                            "node": node.name,
                            "storage": storage.name,
                            "plugintype": storage.type,
                            "content": storage.content,
                            "shared": entry["shared"],
                            "disk": entry["used"],
                            "maxdisk": entry["total"],
                            "status": "unknown" if node.name in sim.faults.offline_nodes else "available",
                        }
                    )
    return found


@route("GET", "/cluster/nextid")
def next_id(ctx: Context) -> str:
    cluster = ctx.sim.cluster
    with cluster.lock:
        if (vmid := ctx.params.get("vmid")) is not None:
            if vmid in cluster.guests:
                raise parameter_error({"vmid": f"VM {vmid} already exists"})
            return str(vmid)
        return str(cluster.next_free_vmid())


def _vmid(guest: Guest) -> int:
    return guest.vmid


# --- live figures


def guest_usage(ctx: Context, guest: Guest) -> dict[str, Any]:
    """cpu (fraction of its cores), mem and disk bytes, uptime: what PVE's pvestatd reports."""
    running = guest.status == "running" and guest.node not in ctx.sim.faults.offline_nodes
    maxdisk = sum(guest.disk_size(key) for key in guest.disks())
    usage = {
        "cpu": 0.0,
        "mem": 0,
        "disk": 0,
        "uptime": 0,
        "netin": 0,
        "netout": 0,
        "diskread": 0,
        "diskwrite": 0,
        "maxmem": guest.maxmem(),
        "maxdisk": maxdisk,
        "maxcpu": guest.maxcpu(),
    }
    if running:
        uptime = int(time.time() - (guest.started_at or time.time()))
        agent = ctx.sim.agents.view(guest.vmid) or {}
        rss = _rss(agent.get("pid")) if agent.get("running") else 0
        base = 48 * 2**20 if guest.kind == "lxc" else 320 * 2**20  # init + services / guest kernel
        usage |= {
            "cpu": 0.004 if agent.get("running") else 0.001,
            "mem": min(base + rss, guest.maxmem()),
            "disk": int(maxdisk * 0.18),
            "uptime": uptime,
            "netin": 1200 * uptime,
            "netout": 800 * uptime,
        }
    return usage


def _rss(pid: Any) -> int:
    try:
        with open(f"/proc/{int(pid)}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, TypeError, ValueError):
        return 0


def vm_resource(ctx: Context, guest: Guest) -> dict[str, Any]:
    usage = guest_usage(ctx, guest)
    offline = guest.node in ctx.sim.faults.offline_nodes
    entry: dict[str, Any] = {
        "id": f"{guest.kind}/{guest.vmid}",
        "type": guest.kind,
        "vmid": guest.vmid,
        "node": guest.node,
        "name": guest.name,
        "status": "unknown" if offline else guest.status,
        "template": 1 if guest.template else 0,
        **usage,
    }
    if guest.lock:
        entry["lock"] = guest.lock
    if tags := guest.config.get("tags"):
        entry["tags"] = tags
    return entry


def node_resource(ctx: Context, node: Node) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": f"node/{node.name}",
        "type": "node",
        "node": node.name,
        "level": "",
        "maxcpu": node.maxcpu,
        "maxmem": node.maxmem,
        "maxdisk": node.maxdisk,
    }
    if node.name in ctx.sim.faults.offline_nodes:
        return entry | {"status": "offline"}
    guests = [g for g in ctx.sim.cluster.guests.values() if g.node == node.name and g.status == "running"]
    usages = [guest_usage(ctx, guest) for guest in guests]
    mem = 2 * 2**30 + sum(usage["mem"] for usage in usages)
    cpu = 0.01 + sum(usage["cpu"] * usage["maxcpu"] for usage in usages) / node.maxcpu
    return entry | {
        "status": "online",
        "cpu": round(cpu, 4),
        "mem": mem,
        "disk": node.maxdisk // 8,
        "uptime": int(time.time() - node.booted_at),
        "cgroup-mode": 2,
    }


def storage_entry(ctx: Context, name: str, node: str) -> dict[str, Any]:
    storage = ctx.sim.cluster.storage[name]
    used = ctx.sim.cluster.used(name, node)
    return {
        "storage": name,
        "type": storage.type,
        "content": storage.content,
        "shared": int(storage.shared),
        "active": 1,
        "enabled": 1,
        "total": storage.size,
        "used": used,
        "avail": storage.size - used,
        "used_fraction": round(used / storage.size, 6) if storage.size else 0,
    }


# --- nodes


@route("GET", "/nodes")
def nodes(ctx: Context) -> list[dict[str, Any]]:
    with ctx.sim.cluster.lock:
        listed = []
        for node in ctx.sim.cluster.nodes.values():
            entry = node_resource(ctx, node)
            listed.append({key: value for key, value in entry.items() if key != "cgroup-mode"})
        return listed


@route("GET", "/nodes/{node}/status")
def node_status(ctx: Context) -> dict[str, Any]:
    node = ctx.sim.cluster.nodes[ctx.node]
    with ctx.sim.cluster.lock:
        entry = node_resource(ctx, node)
    return {
        "cpu": entry["cpu"],
        "uptime": entry["uptime"],
        "loadavg": ["0.12", "0.10", "0.08"],
        "cpuinfo": {
            "cpus": node.maxcpu,
            "cores": node.maxcpu // 2,
            "sockets": 1,
            "model": "Simulated CPU",
            "mhz": "2400.000",
            "hvm": "1",
            "user_hz": 100,
        },
        "memory": {"total": node.maxmem, "used": entry["mem"], "free": node.maxmem - entry["mem"]},
        "swap": {"total": 8 * 2**30, "used": 0, "free": 8 * 2**30},
        "rootfs": {
            "total": node.maxdisk,
            "used": entry["disk"],
            "avail": node.maxdisk - entry["disk"],
            "free": node.maxdisk - entry["disk"],
        },
        "kversion": "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC",
        "pveversion": "pve-manager/9.1.3/a1b2c3d4",
        "boot-info": {"mode": "efi", "secureboot": 0},
        "current-kernel": {"release": "6.17.2-1-pve"},
    }


@route("POST", "/nodes/{node}/status")
def node_command(ctx: Context) -> None:
    """reboot/shutdown: the node goes offline (after a reboot it comes back a few seconds later)."""
    faults, name = ctx.sim.faults, ctx.node
    faults.offline_nodes = faults.offline_nodes | {name}
    if ctx.params["command"] == "reboot":
        import threading

        def back() -> None:
            faults.offline_nodes = faults.offline_nodes - {name}
            ctx.sim.cluster.nodes[name].booted_at = time.time()

        threading.Timer(ctx.sim.seconds(10), back).start()


@route("GET", "/nodes/{node}/storage")
def node_storage(ctx: Context) -> list[dict[str, Any]]:
    params = ctx.params
    with ctx.sim.cluster.lock:
        entries = [storage_entry(ctx, name, ctx.node) for name in ctx.sim.cluster.storage]
    if content := params.get("content"):
        wanted = set(content.replace(";", ",").split(","))
        entries = [entry for entry in entries if wanted & set(entry["content"].split(","))]
    if storage := params.get("storage"):
        entries = [entry for entry in entries if entry["storage"] == storage]
    return entries


@route("GET", "/nodes/{node}/storage/{storage}/status")
def storage_status(ctx: Context) -> dict[str, Any]:
    name = str(ctx.params["storage"])
    if name not in ctx.sim.cluster.storage:
        raise fail(f"storage '{name}' does not exist")
    with ctx.sim.cluster.lock:
        entry = storage_entry(ctx, name, ctx.node)
    return {key: value for key, value in entry.items() if key not in ("storage", "used_fraction")}


# --- tasks


@route("GET", "/nodes/{node}/tasks")
def tasks(ctx: Context) -> list[dict[str, Any]]:
    params = ctx.params
    source = params.get("source", "archive")
    listed = []
    for task in ctx.sim.tasks.listed(ctx.node):
        if (source == "archive" and task.status == "running") or (
            source == "active" and task.status != "running"
        ):
            continue
        if params.get("vmid") is not None and task.id != str(params["vmid"]):
            continue
        if params.get("typefilter") and task.type != params["typefilter"]:
            continue
        if params.get("userfilter") and params["userfilter"] not in task.user:
            continue
        if params.get("errors") and task.exitstatus in (None, "OK"):
            continue
        if params.get("since") is not None and task.starttime < params["since"]:
            continue
        if params.get("until") is not None and task.starttime > params["until"]:
            continue
        listed.append(task.list_view())
    start = params.get("start", 0)
    return listed[start : start + params.get("limit", 50)]


@route("GET", "/nodes/{node}/tasks/{upid}")
def task_index(ctx: Context) -> list[dict[str, str]]:
    ctx.sim.tasks.get(ctx.node, str(ctx.params["upid"]))
    return [{"name": "log"}, {"name": "status"}]


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(ctx: Context) -> dict[str, Any]:
    return ctx.sim.tasks.get(ctx.node, str(ctx.params["upid"])).status_view()


@route("GET", "/nodes/{node}/tasks/{upid}/log")
def task_log(ctx: Context) -> list[dict[str, Any]]:
    task = ctx.sim.tasks.get(ctx.node, str(ctx.params["upid"]))
    start, limit = ctx.params.get("start", 0), ctx.params.get("limit", 50)
    lines = list(task.lines)
    return [{"n": n + 1, "t": line} for n, line in enumerate(lines)][start : start + limit]


@route("DELETE", "/nodes/{node}/tasks/{upid}")
def task_stop(ctx: Context) -> None:
    ctx.sim.tasks.get(ctx.node, str(ctx.params["upid"])).aborted.set()
