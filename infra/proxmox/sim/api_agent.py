"""Inside the guests: booting (the agent starts from the join data), LXC interfaces, the QEMU guest agent
(ping, exec, exec-status, file-write, network-get-interfaces) and cloud-init.

Join data, as Dockyard's templates take it:
- LXC: the config key `env` (NUL-separated KEY=VALUE) holds DOCKYARD_AGENT_JOIN_URL, _JOIN_TOKEN,
  optionally _JOIN_CA_FINGERPRINT, _LABELS (a JSON object) and _NODE_NAME; at start, the agent runs
  with them when a join URL is there.
- QEMU: `agent/file-write` of /etc/dockyard/join.env (KEY=VALUE lines, same names) into a running VM
  whose guest agent is up starts the agent (the template's dockyard-join.path unit); the file stays on
  the VM's disk, so the agent starts again at every boot.

The guest agent answers `status/start` + the boot delay later; before, calls fail 500 `QEMU guest
agent is not running`. `exec` runs nothing on the host: it knows `cat FILE`, `test -e FILE` and
`systemctl is-active dockyard-agent`; any other command exits 0 without output.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

from infra.proxmox.sim.base import Context, fail, route
from infra.proxmox.sim.cluster import Guest
from infra.proxmox.sim.guests import JOIN_FILE, JOIN_URL

if TYPE_CHECKING:
    from infra.proxmox.sim.app import Simulator

CLOUDINIT_KEYS = (
    "cicustom",
    "cipassword",
    "citype",
    "ciupgrade",
    "ciuser",
    "nameserver",
    "searchdomain",
    "sshkeys",
)
_exec_pids = itertools.count(1000)


def join_from_env(value: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in value.split("\0") if "=" in item)
    return {key: val for key, _, val in pairs}


def join_from_file(content: bytes) -> dict[str, str]:
    found = {}
    for line in content.decode(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[key.strip()] = value
    return found


def boot_guest(sim: Simulator, guest: Guest) -> None:
    """Right after `status/start` (or a reboot) completed."""
    if guest.kind == "lxc":
        join = join_from_env(str(guest.config.get("env", "")))
        if join.get(JOIN_URL):
            sim.agents.boot(guest.vmid, "lxc", guest.node, guest.name, str(guest.address), join)
        return
    booted_at = time.time() + sim.seconds(sim.timing.qemu_boot)
    guest.agent_ready_at = booted_at
    guest.cloudinit_applied = cloudinit_values(guest)

    def booted() -> None:
        if guest.status == "running" and guest.agent_ready_at == booted_at and JOIN_FILE in guest.files:
            _start_joined_agent(sim, guest)

    threading.Timer(sim.seconds(sim.timing.qemu_boot), booted).start()


def _start_joined_agent(sim: Simulator, guest: Guest) -> None:
    join = join_from_file(guest.files[JOIN_FILE])
    sim.agents.boot(guest.vmid, "qemu", guest.node, guest.name, str(guest.address), join)


def interfaces(guest: Guest) -> list[dict[str, Any]]:
    mac = _mac(guest)
    return [
        {"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"},
        {
            "name": "eth0",
            "hwaddr": mac.lower(),
            "inet": f"{guest.address}/8",
            "inet6": "fe80::be24:11ff:fe00:1/64",
        },
    ]


def _mac(guest: Guest) -> str:
    net = str(guest.config.get("net0", ""))
    for part in net.split(","):
        _, _, value = part.partition("=")
        if len(value) == 17 and value.count(":") == 5:
            return value
    return "BC:24:11:00:00:01"


@route("GET", "/nodes/{node}/lxc/{vmid}/interfaces")
def lxc_interfaces(ctx: Context) -> list[dict[str, Any]] | None:
    guest = ctx.sim.cluster.guest(ctx.node, "lxc", ctx.vmid)
    return interfaces(guest) if guest.status == "running" else None


# --- QEMU guest agent


def _agent(ctx: Context) -> Guest:
    guest = ctx.sim.cluster.guest(ctx.node, "qemu", ctx.vmid)
    if str(guest.config.get("agent", "0")).split(",")[0].removeprefix("enabled=") not in (
        "1",
        "on",
        "yes",
        "true",
    ):
        raise fail("No QEMU guest agent configured")
    if guest.status != "running":
        raise fail(f"VM {guest.vmid} is not running")
    if guest.agent_ready_at is None or time.time() < guest.agent_ready_at:
        raise fail("QEMU guest agent is not running")
    return guest


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/ping")
def agent_ping(ctx: Context) -> dict[str, Any]:
    _agent(ctx)
    return {"result": {}}


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/file-write")
def agent_file_write(ctx: Context) -> None:
    guest = _agent(ctx)
    content = str(ctx.params["content"])
    if ctx.params.get("encode", True):
        data = content.encode()
    else:
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise fail("Agent error: Invalid parameter 'buf-b64'") from None
    path = str(ctx.params["file"])
    guest.files[path] = data
    if path == JOIN_FILE:
        _start_joined_agent(ctx.sim, guest)


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/exec")
def agent_exec(ctx: Context) -> dict[str, int]:
    guest = _agent(ctx)
    command = [str(part) for part in ctx.params["command"]]
    pid = next(_exec_pids)
    guest.exec_results[pid] = _run(ctx, guest, command, ctx.params.get("input-data"))
    return {"pid": pid}


def _run(ctx: Context, guest: Guest, command: list[str], stdin: Any) -> dict[str, Any]:
    program, args = (command[0].rsplit("/", 1)[-1], command[1:]) if command else ("", [])
    if program == "cat" and args:
        missing = [path for path in args if path not in guest.files]
        if missing:
            return {"exited": 1, "exitcode": 1, "err-data": f"cat: {missing[0]}: No such file or directory\n"}
        return {
            "exited": 1,
            "exitcode": 0,
            "out-data": b"".join(guest.files[p] for p in args).decode(errors="replace"),
        }
    if program == "test" and len(args) == 2 and args[0] in ("-e", "-f"):
        return {"exited": 1, "exitcode": 0 if args[1] in guest.files else 1}
    if program == "systemctl" and args[:1] == ["is-active"]:
        agent = ctx.sim.agents.view(guest.vmid) or {}
        active = agent.get("running", False)
        return {
            "exited": 1,
            "exitcode": 0 if active else 3,
            "out-data": "active\n" if active else "inactive\n",
        }
    return {"exited": 1, "exitcode": 0}


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status")
def agent_exec_status(ctx: Context) -> dict[str, Any]:
    guest = _agent(ctx)
    result = guest.exec_results.get(int(ctx.params["pid"]))
    if result is None:
        raise fail(f"Agent error: Invalid parameter 'pid': no such process {ctx.params['pid']}")
    return result


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
def agent_interfaces(ctx: Context) -> dict[str, Any]:
    guest = _agent(ctx)
    result = []
    for entry in interfaces(guest):
        address, _, prefix = entry["inet"].partition("/")
        result.append(
            {
                "name": entry["name"],
                "hardware-address": entry["hwaddr"],
                "ip-addresses": [{"ip-address": address, "ip-address-type": "ipv4", "prefix": int(prefix)}],
                "statistics": {
                    "rx-bytes": 0,
                    "rx-packets": 0,
                    "rx-errs": 0,
                    "rx-dropped": 0,
                    "tx-bytes": 0,
                    "tx-packets": 0,
                    "tx-errs": 0,
                    "tx-dropped": 0,
                },
            }
        )
    return {"result": result}


# --- cloud-init


def cloudinit_values(guest: Guest) -> dict[str, Any]:
    return {
        key: value
        for key, value in guest.config.items()
        if key in CLOUDINIT_KEYS or (key.startswith("ipconfig") and key[8:].isdigit())
    }


@route("GET", "/nodes/{node}/qemu/{vmid}/cloudinit")
def cloudinit(ctx: Context) -> list[dict[str, Any]]:
    guest = ctx.sim.cluster.guest(ctx.node, "qemu", ctx.vmid)
    current, applied = cloudinit_values(guest), guest.cloudinit_applied
    entries = []
    for key in sorted(set(current) | set(applied)):
        entry: dict[str, Any] = {"key": key}
        if key in applied:
            entry["value"] = "**********" if key == "cipassword" else applied[key]
        if current.get(key) != applied.get(key):
            if key in current:
                entry["pending"] = "**********" if key == "cipassword" else current[key]
            else:
                entry["delete"] = 1
        entries.append(entry)
    return entries


@route("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit")
def cloudinit_regenerate(ctx: Context) -> None:
    guest = ctx.sim.cluster.guest(ctx.node, "qemu", ctx.vmid)
    with ctx.sim.cluster.config_lock(guest):
        guest.cloudinit_applied = cloudinit_values(guest)
