"""Every PVE request Dockyard makes, asserted exactly per configuration, and each checked against PVE 9.1's
schema: known parameters only, required ones present, booleans 0/1, types, enums, patterns, formats."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from core.proxmox import params
from core.proxmox.joindata import JoinData, join_env_file, lxc_env
from core.proxmox.params import PveCall
from core.proxmox.spec import GuestKind, NodePoolSpec

SCHEMA_FILE = Path("/work/shared/proxmox/pve9.1-subset-paas.json")
NODE = "node_3f2a9c0b7d1e"
UPID = "UPID:pve1:000A1B2C:00B2C3D4:65F0A1B2:qmclone:9000:dockyard@pve!provision:"
KEYS = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx1fXQ5JxkL0q0bYk7QJ8u3c0fOa2V3cQn0mL4xS6e9 ops@example",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7+/= deploy key (ci)",
]
JOIN = JoinData(
    join_url="https://dockyard.example.com:7800",
    join_token="djt_s3cr3t",
    node_name="dy-3f2a9c0b7d1e",
    labels={"zone": "a"},
)
LXC = NodePoolSpec(
    name="workers", kind=GuestKind.LXC, template_vmid=9000, cores=2, memory_mib=2048, disk_gib=16
)
LXC_VLAN = LXC.model_copy(update={"vlan_tag": 20, "tags": ["prod"], "bridge": "vmbr1"})
QEMU = NodePoolSpec(
    name="vms",
    kind=GuestKind.QEMU,
    template_vmid=9100,
    cores=4,
    memory_mib=4096,
    disk_gib=40,
    linked_clone=False,
    storage="ceph-vm",
    vlan_tag=7,
    ciuser="dockyard",
    sshkeys=KEYS,
)
QEMU_PLAIN = NodePoolSpec(name="vms", kind=GuestKind.QEMU, template_vmid=9100)
DESCRIPTION = f"Dockyard node {NODE} of pool %s. Managed by Dockyard: changes here are overwritten."


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA_FILE.is_file():
        pytest.fail(f"PVE's API schema subset is missing: {SCHEMA_FILE} (see /work/shared/proxmox/README.md)")
    return json.loads(SCHEMA_FILE.read_text())


# --- exact requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(
            params.clone(LXC, NODE, "pve1", 105, None),
            PveCall(
                method="POST",
                template="/nodes/{node}/lxc/{vmid}/clone",
                path_params={"node": "pve1", "vmid": 9000},
                params={
                    "newid": 105,
                    "hostname": "dy-3f2a9c0b7d1e",
                    "description": DESCRIPTION % "workers",
                    "full": 0,
                },
            ),
            id="lxc-linked-clone-on-the-template-node",
        ),
        pytest.param(
            params.clone(LXC, NODE, "pve1", 105, "pve2"),
            PveCall(
                method="POST",
                template="/nodes/{node}/lxc/{vmid}/clone",
                path_params={"node": "pve1", "vmid": 9000},
                params={
                    "newid": 105,
                    "hostname": "dy-3f2a9c0b7d1e",
                    "description": DESCRIPTION % "workers",
                    "full": 0,
                    "target": "pve2",
                },
            ),
            id="lxc-linked-clone-to-another-node",
        ),
        pytest.param(
            params.clone(QEMU, NODE, "pve1", 205, "pve3"),
            PveCall(
                method="POST",
                template="/nodes/{node}/qemu/{vmid}/clone",
                path_params={"node": "pve1", "vmid": 9100},
                params={
                    "newid": 205,
                    "name": "dy-3f2a9c0b7d1e",
                    "description": DESCRIPTION % "vms",
                    "full": 1,
                    "target": "pve3",
                    "storage": "ceph-vm",
                },
            ),
            id="qemu-full-clone-with-storage",
        ),
        pytest.param(
            params.configure(LXC, NODE, "pve2", 105, JOIN),
            PveCall(
                method="PUT",
                template="/nodes/{node}/lxc/{vmid}/config",
                path_params={"node": "pve2", "vmid": 105},
                params={
                    "cores": 2,
                    "memory": 2048,
                    "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
                    "tags": "dockyard;dyn-node_3f2a9c0b7d1e",
                    "description": DESCRIPTION % "workers",
                    "onboot": 1,
                    "env": lxc_env(JOIN),
                },
            ),
            id="lxc-config",
        ),
        pytest.param(
            params.configure(
                LXC_VLAN,
                NODE,
                "pve2",
                105,
                JOIN,
                {"net0": "name=eth0,bridge=vmbr0,hwaddr=bc:24:11:aa:bb:cc,ip=dhcp,type=veth"},
            ),
            PveCall(
                method="PUT",
                template="/nodes/{node}/lxc/{vmid}/config",
                path_params={"node": "pve2", "vmid": 105},
                params={
                    "cores": 2,
                    "memory": 2048,
                    "net0": "name=eth0,bridge=vmbr1,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,tag=20",
                    "tags": "dockyard;dyn-node_3f2a9c0b7d1e;prod",
                    "description": DESCRIPTION % "workers",
                    "onboot": 1,
                    "env": lxc_env(JOIN),
                },
            ),
            id="lxc-config-vlan-keeps-mac",
        ),
        pytest.param(
            params.configure(
                QEMU, NODE, "pve3", 205, JOIN, {"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0"}
            ),
            PveCall(
                method="PUT",
                template="/nodes/{node}/qemu/{vmid}/config",
                path_params={"node": "pve3", "vmid": 205},
                params={
                    "cores": 4,
                    "memory": "4096",
                    "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=7",
                    "tags": "dockyard;dyn-node_3f2a9c0b7d1e",
                    "description": DESCRIPTION % "vms",
                    "onboot": 1,
                    "agent": "enabled=1",
                    "ipconfig0": "ip=dhcp",
                    "ciuser": "dockyard",
                    "sshkeys": (
                        "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIBx1fXQ5JxkL0q0bYk7QJ8u3c0fOa2V3cQn0mL4xS6e9"
                        "%20ops%40example%0Assh-rsa%20AAAAB3NzaC1yc2EAAAADAQABAAABAQC7%2B%2F%3D%20deploy%20key"
                        "%20%28ci%29"
                    ),
                },
            ),
            id="qemu-config-cloud-init",
        ),
        pytest.param(
            params.configure(QEMU_PLAIN, NODE, "pve3", 205, JOIN),
            PveCall(
                method="PUT",
                template="/nodes/{node}/qemu/{vmid}/config",
                path_params={"node": "pve3", "vmid": 205},
                params={
                    "cores": 2,
                    "memory": "2048",
                    "net0": "virtio,bridge=vmbr0",
                    "tags": "dockyard;dyn-node_3f2a9c0b7d1e",
                    "description": DESCRIPTION % "vms",
                    "onboot": 1,
                    "agent": "enabled=1",
                    "ipconfig0": "ip=dhcp",
                },
            ),
            id="qemu-config-plain",
        ),
        pytest.param(
            params.resize(GuestKind.LXC, "pve2", 105, "rootfs", 16),
            PveCall(
                method="PUT",
                template="/nodes/{node}/lxc/{vmid}/resize",
                path_params={"node": "pve2", "vmid": 105},
                params={"disk": "rootfs", "size": "16G"},
            ),
            id="lxc-resize",
        ),
        pytest.param(
            params.resize(GuestKind.QEMU, "pve3", 205, "scsi0", 40),
            PveCall(
                method="PUT",
                template="/nodes/{node}/qemu/{vmid}/resize",
                path_params={"node": "pve3", "vmid": 205},
                params={"disk": "scsi0", "size": "40G"},
            ),
            id="qemu-resize",
        ),
        pytest.param(
            params.start(GuestKind.LXC, "pve2", 105),
            PveCall(
                method="POST",
                template="/nodes/{node}/lxc/{vmid}/status/start",
                path_params={"node": "pve2", "vmid": 105},
            ),
            id="start",
        ),
        pytest.param(
            params.stop(GuestKind.QEMU, "pve3", 205),
            PveCall(
                method="POST",
                template="/nodes/{node}/qemu/{vmid}/status/stop",
                path_params={"node": "pve3", "vmid": 205},
            ),
            id="stop-has-no-force",
        ),
        pytest.param(
            params.shutdown(GuestKind.LXC, "pve2", 105, 30),
            PveCall(
                method="POST",
                template="/nodes/{node}/lxc/{vmid}/status/shutdown",
                path_params={"node": "pve2", "vmid": 105},
                params={"timeout": 30, "forceStop": 1},
            ),
            id="shutdown",
        ),
        pytest.param(
            params.destroy(GuestKind.LXC, "pve2", 105),
            PveCall(
                method="DELETE",
                template="/nodes/{node}/lxc/{vmid}",
                path_params={"node": "pve2", "vmid": 105},
                params={"purge": 1, "destroy-unreferenced-disks": 1, "force": 1},
            ),
            id="lxc-destroy-forces",
        ),
        pytest.param(
            params.destroy(GuestKind.QEMU, "pve3", 205),
            PveCall(
                method="DELETE",
                template="/nodes/{node}/qemu/{vmid}",
                path_params={"node": "pve3", "vmid": 205},
                params={"purge": 1, "destroy-unreferenced-disks": 1},
            ),
            id="qemu-destroy-has-no-force",
        ),
        pytest.param(
            params.write_join_file("pve3", 205, JOIN),
            PveCall(
                method="POST",
                template="/nodes/{node}/qemu/{vmid}/agent/file-write",
                path_params={"node": "pve3", "vmid": 205},
                params={"file": "/etc/dockyard/join.env", "content": join_env_file(JOIN)},
            ),
            id="file-write-leaves-encode-default",
        ),
        pytest.param(
            params.task_status("pve1", UPID),
            PveCall(
                method="GET",
                template="/nodes/{node}/tasks/{upid}/status",
                path_params={"node": "pve1", "upid": UPID},
            ),
            id="task-status",
        ),
        pytest.param(
            params.task_log("pve1", UPID),
            PveCall(
                method="GET",
                template="/nodes/{node}/tasks/{upid}/log",
                path_params={"node": "pve1", "upid": UPID},
                params={"limit": 5000},
            ),
            id="task-log",
        ),
        pytest.param(params.next_vmid(), PveCall(method="GET", template="/cluster/nextid"), id="nextid"),
        pytest.param(
            params.cluster_resources(), PveCall(method="GET", template="/cluster/resources"), id="resources"
        ),
    ],
)
def test_exact(call: PveCall, expected: PveCall) -> None:
    assert call == expected


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (params.interfaces(GuestKind.LXC, "pve2", 105), "/nodes/pve2/lxc/105/interfaces"),
        (params.interfaces(GuestKind.QEMU, "pve3", 205), "/nodes/pve3/qemu/205/agent/network-get-interfaces"),
        (params.agent_ping("pve3", 205), "/nodes/pve3/qemu/205/agent/ping"),
        (params.status(GuestKind.QEMU, "pve3", 205), "/nodes/pve3/qemu/205/status/current"),
        (params.guest_config(GuestKind.LXC, "pve2", 105), "/nodes/pve2/lxc/105/config"),
        (params.task_status("pve1", UPID), f"/nodes/pve1/tasks/{UPID}/status"),
    ],
)
def test_paths(call: PveCall, path: str) -> None:
    assert call.path == path


def test_sshkeys_decode_to_the_keys() -> None:
    assert unquote(params.sshkeys(KEYS)) == "\n".join(KEYS)
    assert re.fullmatch(r"[-%a-zA-Z0-9_.!~*'()]*", params.sshkeys(KEYS))  # PVE's `urlencoded` format


def test_path_params_are_one_segment() -> None:
    with pytest.raises(ValueError, match="one non-empty path segment"):
        params.task_status("pve1", "../../access")


# --- every request against PVE's schema -----------------------------------------------------------

ALL_CALLS = {
    "clone-lxc": params.clone(LXC, NODE, "pve1", 105, "pve2"),
    "clone-qemu": params.clone(QEMU, NODE, "pve1", 205, "pve3"),
    "clone-qemu-linked": params.clone(QEMU_PLAIN, NODE, "pve1", 206, None),
    "config-lxc": params.configure(LXC, NODE, "pve2", 105, JOIN),
    "config-lxc-vlan": params.configure(
        LXC_VLAN, NODE, "pve2", 105, JOIN, {"net0": "name=eth0,hwaddr=BC:24:11:AA:BB:CC"}
    ),
    "config-qemu": params.configure(
        QEMU, NODE, "pve3", 205, JOIN, {"net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0"}
    ),
    "config-qemu-plain": params.configure(QEMU_PLAIN, NODE, "pve3", 205, JOIN),
    "guest-config-lxc": params.guest_config(GuestKind.LXC, "pve2", 105),
    "guest-config-qemu": params.guest_config(GuestKind.QEMU, "pve3", 205),
    **{
        f"resize-{k.value}": params.resize(k, "pve2", 105, "rootfs" if k is GuestKind.LXC else "scsi0", 16)
        for k in GuestKind
    },
    **{f"start-{k.value}": params.start(k, "pve2", 105) for k in GuestKind},
    **{f"stop-{k.value}": params.stop(k, "pve2", 105) for k in GuestKind},
    **{f"shutdown-{k.value}": params.shutdown(k, "pve2", 105) for k in GuestKind},
    **{f"destroy-{k.value}": params.destroy(k, "pve2", 105) for k in GuestKind},
    **{f"status-{k.value}": params.status(k, "pve2", 105) for k in GuestKind},
    **{f"interfaces-{k.value}": params.interfaces(k, "pve2", 105) for k in GuestKind},
    "agent-ping": params.agent_ping("pve3", 205),
    "file-write": params.write_join_file("pve3", 205, JOIN),
    "task-status": params.task_status("pve1", UPID),
    "task-log": params.task_log("pve1", UPID),
    "nextid": params.next_vmid(),
    "resources": params.cluster_resources(),
}


@pytest.mark.parametrize("call", [pytest.param(call, id=name) for name, call in ALL_CALLS.items()])
def test_every_request_is_one_pve_accepts(call: PveCall, schema: dict[str, Any]) -> None:
    assert schema_problems(call, schema) == []


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        pytest.param(
            PveCall(
                method="POST",
                template="/nodes/{node}/lxc/{vmid}/status/stop",
                path_params={"node": "pve1", "vmid": 100},
                params={"force": 1},
            ),
            "force: not a parameter of POST /nodes/{node}/lxc/{vmid}/status/stop",
            id="unknown",
        ),
        pytest.param(
            PveCall(
                method="DELETE",
                template="/nodes/{node}/lxc/{vmid}",
                path_params={"node": "pve1", "vmid": 100},
                params={"purge": "True"},
            ),
            "purge: boolean must be 0 or 1, got 'True'",
            id="python-bool",
        ),
        pytest.param(
            PveCall(
                method="PUT",
                template="/nodes/{node}/lxc/{vmid}/resize",
                path_params={"node": "pve1", "vmid": 100},
                params={"disk": "rootfs"},
            ),
            "size: required",
            id="required",
        ),
        pytest.param(
            PveCall(
                method="PUT",
                template="/nodes/{node}/lxc/{vmid}/config",
                path_params={"node": "pve1", "vmid": 100},
                params={"net0": "name=eth0,vlan=3"},
            ),
            "net0: unknown key vlan",
            id="property-string-key",
        ),
        pytest.param(
            PveCall(
                method="PUT",
                template="/nodes/{node}/lxc/{vmid}/config",
                path_params={"node": "pve1", "vmid": 100},
                params={"tags": "a;b c!"},
            ),
            "tags: 'c!' is not a PVE tag",
            id="tag-list",
        ),
        pytest.param(
            PveCall(method="GET", template="/nodes/{node}/nope"),
            "no GET /nodes/{node}/nope in the schema",
            id="path",
        ),
    ],
)
def test_the_schema_check_catches(call: PveCall, problem: str, schema: dict[str, Any]) -> None:
    assert problem in schema_problems(call, schema)


def schema_problems(call: PveCall, schema: dict[str, Any]) -> list[str]:
    """What PVE would refuse in `call`, judged by the schema's parameter definitions."""
    endpoint = schema.get(call.template, {}).get(call.method)
    if endpoint is None:
        return [f"no {call.method} {call.template} in the schema"]
    properties: dict[str, Any] = endpoint.get("parameters", {}).get("properties", {})
    problems = [f"{name}: not a path parameter" for name in call.path_params if name not in properties]
    for name, definition in properties.items():
        if not definition.get("optional") and "[n]" not in name and name not in call.path_params:
            if name not in call.params:
                problems.append(f"{name}: required")
    for name, value in call.params.items():
        definition = properties.get(name) or properties.get(re.sub(r"\d+$", "[n]", name))
        if definition is None:
            problems.append(f"{name}: not a parameter of {call.method} {call.template}")
            continue
        problems += [f"{name}: {problem}" for problem in _value_problems(value, definition)]
    return problems


def _value_problems(value: object, definition: dict[str, Any]) -> list[str]:
    kind = definition.get("type")
    if kind == "boolean":
        return [] if type(value) is int and value in (0, 1) else [f"boolean must be 0 or 1, got {value!r}"]
    if kind == "integer":
        if type(value) is not int:
            return [f"integer expected, got {value!r}"]
        low, high = definition.get("minimum"), definition.get("maximum")
        out = (low is not None and value < int(low)) or (high is not None and value > int(high))
        return [f"{value} outside {low}-{high}"] if out else []
    if kind == "number":
        return [] if type(value) in (int, float) else [f"number expected, got {value!r}"]
    if not isinstance(value, str):
        return [f"string expected, got {value!r}"]
    problems = []
    if "enum" in definition and value not in definition["enum"]:
        problems.append(f"{value!r} not one of {definition['enum']}")
    if "maxLength" in definition and len(value) > int(definition["maxLength"]):
        problems.append(f"longer than {definition['maxLength']}")
    if "pattern" in definition and not re.fullmatch(_python_regex(definition["pattern"]), value, re.S):
        problems.append(f"{value!r} does not match {definition['pattern']}")
    fmt = definition.get("format")
    if isinstance(fmt, dict):
        problems += _property_string_problems(value, fmt)
    elif isinstance(fmt, str):
        problems += _format_problems(value, fmt)
    return problems


def _python_regex(pattern: str) -> str:
    return pattern.replace("(?^:", "(?:")


_FORMATS = {
    "pve-node": r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?",
    "dns-name": r"([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?",
    "pve-storage-id": r"[a-z][a-z0-9\-_.]*[a-z0-9]",
    "urlencoded": r"[-%a-zA-Z0-9_.!~*'()]*",
    "mac-addr": r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}",
}
_TAG = re.compile(r"[a-z0-9_][a-z0-9_\-+.]*", re.I)


def _format_problems(value: str, fmt: str) -> list[str]:
    if fmt == "pve-tag-list":
        return [
            f"{tag!r} is not a PVE tag"
            for tag in re.split(r"[;, ]", value)
            if tag and not _TAG.fullmatch(tag)
        ]
    if fmt == "pve-vmid":
        return [] if value.isdigit() else [f"{value!r} is not a vmid"]
    if fmt == "pve-qm-ipconfig":
        return _property_string_problems(
            value, {key: {"type": "string"} for key in ("ip", "gw", "ip6", "gw6")}
        )
    pattern = _FORMATS.get(fmt)
    if pattern is not None and not re.fullmatch(pattern, value):
        return [f"{value!r} is not a {fmt}"]
    return []


def _property_string_problems(value: str, fmt: dict[str, Any]) -> list[str]:
    """PVE property strings: `k=v,k2=v2`, a bare first value for the default key, `<alias>=v` forms."""
    problems = []
    default_key = next((key for key, d in fmt.items() if d.get("default_key")), None)
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if not sep:
            key, item = default_key or "", part
            if key not in fmt and part not in fmt:
                problems.append(f"{part!r} has no key and there is no default key")
                continue
            if part in fmt and "keyAlias" in fmt[part]:  # `virtio` alone: the model, MAC generated
                continue
        if key not in fmt:
            problems.append(f"unknown key {key}")
            continue
        definition = fmt[key]
        if "alias" in definition:  # `virtio=MAC`: model virtio, macaddr MAC
            definition = fmt[definition["alias"]]
        if definition.get("type") == "boolean" and item not in ("0", "1"):
            problems.append(f"{key}: boolean must be 0 or 1, got {item!r}")
        elif definition.get("type") == "integer" and not item.isdigit():
            problems.append(f"{key}: integer expected, got {item!r}")
        elif "enum" in definition and item not in definition["enum"]:
            problems.append(f"{key}: {item!r} not one of {definition['enum']}")
        elif isinstance(definition.get("format"), str):
            problems += [f"{key}: {p}" for p in _format_problems(item, definition["format"])]
    return problems
