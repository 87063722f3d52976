"""Every PVE request Dockyard makes, built as data: method, path and the exact parameters (Kamal's "commands
are data"). activities/proxmox/ runs them; tests assert them exactly and check each against PVE's schema.

Rules every builder keeps: booleans are `1`/`0` (proxmoxer would send Python's `True` as the string "True",
which PVE refuses); only parameters the path's schema has; nothing optional PVE already defaults to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, field_validator

from core.contracts import Contract
from core.proxmox.guests import guest_name, guest_tags, qemu_mac
from core.proxmox.joindata import JOIN_ENV_PATH, JoinData, join_env_file, lxc_env
from core.proxmox.spec import GuestKind, NodePoolSpec

Method = Literal["GET", "POST", "PUT", "DELETE"]
ParamValue = str | int
TASK_LOG_LINES = 5000
SHUTDOWN_TIMEOUT_SECONDS = 60


class PveCall(Contract):
    method: Method
    template: str = Field(description="the schema's path, e.g. /nodes/{node}/lxc/{vmid}/clone")
    path_params: dict[str, ParamValue] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(default_factory=dict, description="query (GET, DELETE) or body")

    @field_validator("path_params")
    @classmethod
    def _one_segment_each(cls, values: dict[str, ParamValue]) -> dict[str, ParamValue]:
        for name, value in values.items():
            if not str(value) or "/" in str(value) or "?" in str(value):
                raise ValueError(f"{name} must be one non-empty path segment, got {value!r}")
        return values

    @property
    def path(self) -> str:
        """The path as sent (a UPID's `:`, `@` and `!` are legal in a path and go as they are)."""
        return self.template.format(**{name: str(value) for name, value in self.path_params.items()})

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def flag(value: bool) -> int:
    return 1 if value else 0


def _guest(
    method: Method,
    kind: GuestKind,
    node: str,
    vmid: int,
    suffix: str = "",
    params: dict[str, ParamValue] | None = None,
) -> PveCall:
    return PveCall(
        method=method,
        template=f"/nodes/{{node}}/{kind.value}/{{vmid}}{suffix}",
        path_params={"node": node, "vmid": vmid},
        params=params or {},
    )


# --- the cluster ----------------------------------------------------------------------------------


def cluster_resources() -> PveCall:
    """Nodes, storages and guests at once: one consistent snapshot for placement and lookup."""
    return PveCall(method="GET", template="/cluster/resources")


def next_vmid() -> PveCall:
    return PveCall(method="GET", template="/cluster/nextid")


def task_status(node: str, upid: str) -> PveCall:
    return PveCall(
        method="GET", template="/nodes/{node}/tasks/{upid}/status", path_params={"node": node, "upid": upid}
    )


def task_log(node: str, upid: str) -> PveCall:
    return PveCall(
        method="GET",
        template="/nodes/{node}/tasks/{upid}/log",
        path_params={"node": node, "upid": upid},
        params={"limit": TASK_LOG_LINES},
    )


# --- making a guest -------------------------------------------------------------------------------


def guest_description(spec: NodePoolSpec, node_id: str) -> str:
    return f"Dockyard node {node_id} of pool {spec.name}. Managed by Dockyard: changes here are overwritten."


def clone(spec: NodePoolSpec, node_id: str, template_node: str, newid: int, target: str | None) -> PveCall:
    """Clone the pool's template as the node's guest, named already so a retried step finds it. `target`
    only when the guest goes to another node than the template's; `storage` only for full clones."""
    params: dict[str, ParamValue] = {
        "newid": newid,
        ("hostname" if spec.kind is GuestKind.LXC else "name"): guest_name(node_id),
        "description": guest_description(spec, node_id),
        "full": flag(not spec.linked_clone),
    }
    if target is not None:
        params["target"] = target
    if not spec.linked_clone and spec.storage:
        params["storage"] = spec.storage
    return _guest("POST", spec.kind, template_node, spec.template_vmid, "/clone", params)


def guest_config(kind: GuestKind, node: str, vmid: int) -> PveCall:
    return _guest("GET", kind, node, vmid, "/config")


def net0(spec: NodePoolSpec, current: object = None) -> str:
    """LXC `name=eth0,bridge=B[,hwaddr=MAC],ip=dhcp[,tag=N]`, QEMU `virtio[=MAC],bridge=B[,tag=N]`: the MAC
    the guest already has (from `current`, its net0 now) is kept."""
    mac = _lxc_hwaddr(current) if spec.kind is GuestKind.LXC else qemu_mac(current)
    if spec.kind is GuestKind.LXC:
        parts = ["name=eth0", f"bridge={spec.bridge}", *([f"hwaddr={mac}"] if mac else []), "ip=dhcp"]
    else:
        parts = [f"virtio={mac}" if mac else "virtio", f"bridge={spec.bridge}"]
    if spec.vlan_tag is not None:
        parts.append(f"tag={spec.vlan_tag}")
    return ",".join(parts)


def _lxc_hwaddr(net: object) -> str | None:
    found = [part.removeprefix("hwaddr=") for part in str(net or "").split(",") if part.startswith("hwaddr=")]
    return found[0].upper() if found else None


def sshkeys(keys: list[str]) -> str:
    """cloud-init `sshkeys`: one key per line, percent-encoded as PVE's `urlencoded` format wants (every
    byte but letters, digits and `-_.~` as %XX; spaces %20, never `+`)."""
    return quote("\n".join(keys), safe="")


def configure(
    spec: NodePoolSpec,
    node_id: str,
    node: str,
    vmid: int,
    join: JoinData,
    current: Mapping[str, Any] | None = None,
) -> PveCall:
    """The guest's configuration, set in one synchronous PUT: size, network, Dockyard's tags, start on boot,
    and for LXC the join data in `env`; for QEMU the guest agent and cloud-init (the join data is written into
    the running VM instead, see write_join_file). `current` is the guest's config now (its MAC is kept)."""
    current = current or {}
    params: dict[str, ParamValue] = {
        "cores": spec.cores,
        "memory": spec.memory_mib if spec.kind is GuestKind.LXC else str(spec.memory_mib),
        "net0": net0(spec, current.get("net0")),
        "tags": ";".join(guest_tags(node_id, spec.tags)),
        "description": guest_description(spec, node_id),
        "onboot": flag(True),
    }
    if spec.kind is GuestKind.LXC:
        params["env"] = lxc_env(join)
    else:
        params["agent"] = "enabled=1"
        params["ipconfig0"] = spec.ipconfig0 or "ip=dhcp"
        if spec.ciuser:
            params["ciuser"] = spec.ciuser
        if spec.sshkeys:
            params["sshkeys"] = sshkeys(spec.sshkeys)
    return _guest("PUT", spec.kind, node, vmid, "/config", params)


def resize(kind: GuestKind, node: str, vmid: int, disk: str, size_gib: int) -> PveCall:
    """Grow `disk` to `size_gib` (absolute: a repeated call asks for the same size)."""
    return _guest("PUT", kind, node, vmid, "/resize", {"disk": disk, "size": f"{size_gib}G"})


# --- running it ----------------------------------------------------------------------------------


def status(kind: GuestKind, node: str, vmid: int) -> PveCall:
    return _guest("GET", kind, node, vmid, "/status/current")


def start(kind: GuestKind, node: str, vmid: int) -> PveCall:
    return _guest("POST", kind, node, vmid, "/status/start")


def stop(kind: GuestKind, node: str, vmid: int) -> PveCall:
    """Hard stop (neither kind's stop has a `force`: it is immediate)."""
    return _guest("POST", kind, node, vmid, "/status/stop")


def shutdown(
    kind: GuestKind, node: str, vmid: int, timeout_seconds: int = SHUTDOWN_TIMEOUT_SECONDS
) -> PveCall:
    """Clean shutdown, stopped hard after `timeout_seconds`."""
    return _guest(
        "POST", kind, node, vmid, "/status/shutdown", {"timeout": timeout_seconds, "forceStop": flag(True)}
    )


def destroy(kind: GuestKind, node: str, vmid: int) -> PveCall:
    """Delete the guest with its disks (unreferenced ones too) and its place in backup/replication/HA jobs.
    LXC's delete has `force` (destroy even if running); QEMU's has none."""
    params: dict[str, ParamValue] = {"purge": flag(True), "destroy-unreferenced-disks": flag(True)}
    if kind is GuestKind.LXC:
        params["force"] = flag(True)
    return _guest("DELETE", kind, node, vmid, "", params)


def interfaces(kind: GuestKind, node: str, vmid: int) -> PveCall:
    if kind is GuestKind.LXC:
        return _guest("GET", kind, node, vmid, "/interfaces")
    return _guest("GET", kind, node, vmid, "/agent/network-get-interfaces")


def agent_ping(node: str, vmid: int) -> PveCall:
    return _guest("POST", GuestKind.QEMU, node, vmid, "/agent/ping")


def write_join_file(node: str, vmid: int, join: JoinData) -> PveCall:
    """`/etc/dockyard/join.env` in a running VM, through its guest agent. The content goes as text: the API's
    default `encode=1` base64-encodes it for QEMU."""
    content = join_env_file(join)
    return _guest(
        "POST", GuestKind.QEMU, node, vmid, "/agent/file-write", {"file": JOIN_ENV_PATH, "content": content}
    )
