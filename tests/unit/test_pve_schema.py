"""The PVE simulator's validation and permission checks: what PVE 9.1 refuses, with its own messages."""

from __future__ import annotations

from typing import Any

import pytest

from infra.proxmox.sim.auth import Principal, check_permissions
from infra.proxmox.sim.base import PveError
from infra.proxmox.sim.schema import Schema, parse_property_string, validate

SCHEMA = Schema.load()
LXC_CLONE = ("POST", "/nodes/{node}/lxc/{vmid}/clone")
LXC_CONFIG = ("PUT", "/nodes/{node}/lxc/{vmid}/config")
QEMU_CONFIG = ("PUT", "/nodes/{node}/qemu/{vmid}/config")
NOT_DEFINED = "property is not defined in schema and the schema does not allow additional properties"


def errors_of(endpoint: tuple[str, str], params: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(PveError) as raised:
        validate(SCHEMA.endpoints[endpoint], params)
    assert (raised.value.status, raised.value.message, raised.value.by_schema) == (
        400,
        "Parameter verification failed.",
        True,
    )
    assert raised.value.errors is not None
    return raised.value.errors


CT = {"node": "pve1", "vmid": "9000"}

REFUSED = [
    pytest.param(
        LXC_CLONE, {**CT, "newid": "100", "bogus": "1"}, {"bogus": NOT_DEFINED}, id="unknown-parameter"
    ),
    pytest.param(
        LXC_CLONE,
        {**CT, "newid": "100", "full": "True"},
        {"full": "type check ('boolean') failed - got 'True'"},
        id="python-true-as-boolean",
    ),
    pytest.param(
        LXC_CLONE,
        {**CT, "newid": "100", "full": "true"},
        {"full": "type check ('boolean') failed - got 'true'"},
        id="json-word-as-form-boolean",
    ),
    pytest.param(
        LXC_CLONE, CT, {"newid": "property is missing and it is not optional"}, id="missing-required"
    ),
    pytest.param(
        LXC_CLONE,
        {**CT, "newid": "99"},
        {"newid": "invalid format - value does not look like a valid VM ID\n"},
        id="vmid-format-before-minimum",
    ),
    pytest.param(
        LXC_CONFIG, {**CT, "memory": "8"}, {"memory": "value must have a minimum value of 16"}, id="minimum"
    ),
    pytest.param(
        LXC_CONFIG,
        {**CT, "cores": "9000"},
        {"cores": "value must have a maximum value of 8192"},
        id="maximum",
    ),
    pytest.param(
        LXC_CLONE,
        {**CT, "newid": "abc"},
        {"newid": "type check ('integer') failed - got 'abc'"},
        id="integer-type",
    ),
    pytest.param(
        LXC_CLONE,
        {"node": "pve_1", "vmid": "9000", "newid": "100"},
        {"node": "invalid format - value does not look like a valid node name\n"},
        id="pve-node-format",
    ),
    pytest.param(
        LXC_CLONE,
        {**CT, "newid": "100", "hostname": "bad_name"},
        {"hostname": "invalid format - value does not look like a valid DNS name\n"},
        id="dns-name-format",
    ),
    pytest.param(
        ("GET", "/cluster/resources"),
        {"type": "vms"},
        {"type": "value 'vms' does not have a value in the enumeration 'vm, storage, node, sdn'"},
        id="enum",
    ),
    pytest.param(LXC_CONFIG, {**CT, "net32": "name=eth0"}, {"net32": NOT_DEFINED}, id="index-beyond-count"),
    pytest.param(LXC_CONFIG, {**CT, "net01": "name=eth0"}, {"net01": NOT_DEFINED}, id="index-leading-zero"),
    pytest.param(LXC_CONFIG, {**CT, "scsi0": "ceph-vm:1"}, {"scsi0": NOT_DEFINED}, id="qemu-key-on-lxc"),
    pytest.param(
        LXC_CONFIG,
        {**CT, "tags": "dockyard;bad tag!"},
        {"tags": "invalid format - invalid characters in tag\n"},
        id="tag-list",
    ),
    pytest.param(
        LXC_CONFIG,
        {**CT, "env": "DOCKYARD_AGENT_JOIN_URL=x\0bad key=1"},
        {"env": "value does not match the regex pattern"},
        id="env-pattern",
    ),
    pytest.param(
        LXC_CONFIG,
        {**CT, "net0": "name=eth0,bridge=vm br"},
        {"net0": "invalid format - format error\nnet0.bridge: value does not match the regex pattern\n"},
        id="property-string-pattern",
    ),
    pytest.param(
        LXC_CONFIG,
        {**CT, "net0": "bridge=vmbr0,colour=blue"},
        {"net0": "invalid format - invalid key in comma-separated list property: colour\n"},
        id="property-string-unknown-key",
    ),
    pytest.param(
        LXC_CONFIG,
        {**CT, "net0": "bridge=vmbr0"},
        {"net0": "invalid format - format error\nnet0.name: property is missing and it is not optional\n"},
        id="property-string-missing-key",
    ),
    pytest.param(
        LXC_CONFIG,
        {**CT, "digest": "0" * 41},
        {"digest": "value may only be 40 characters long"},
        id="max-length",
    ),
    pytest.param(
        QEMU_CONFIG,
        {**CT, "sshkeys": "ssh-ed25519 AAAA key"},
        {"sshkeys": "invalid format - invalid urlencoded string: ssh-ed25519 AAAA key\n"},
        id="sshkeys-not-urlencoded",
    ),
    pytest.param(
        QEMU_CONFIG,
        {**CT, "ipconfig0": "ip=10.0.0.5"},
        {
            "ipconfig0": "invalid format - format error\nipconfig0.ip: "
            "invalid format - value does not look like a valid ipv4 network configuration\n\n"
        },
        id="ipconfig-cidr",
    ),
    pytest.param(
        ("POST", "/nodes/{node}/qemu/{vmid}/agent/exec"),
        CT,
        {"command": "property is missing and it is not optional"},
        id="array-missing",
    ),
    pytest.param(
        ("PUT", "/nodes/{node}/lxc/{vmid}/resize"),
        {**CT, "disk": "rootfs", "size": "2 GB"},
        {"size": "value does not match the regex pattern"},
        id="size-pattern",
    ),
    pytest.param(
        ("POST", "/access/ticket"),
        {"username": "root@pam", "password": "x", "path": "/vms"},
        {"privs": "missing property - 'path' requires this property"},
        id="requires",
    ),
]


@pytest.mark.parametrize(("endpoint", "params", "expected"), REFUSED)
def test_refused_as_pve_refuses(
    endpoint: tuple[str, str], params: dict[str, Any], expected: dict[str, str]
) -> None:
    assert errors_of(endpoint, params) == expected


ACCEPTED = [
    pytest.param(LXC_CLONE, {**CT, "newid": "100", "full": "1", "target": "pve2"}, id="form-boolean"),
    pytest.param(LXC_CLONE, {**CT, "newid": 100, "full": True}, id="json-values"),
    pytest.param(
        LXC_CONFIG,
        {**CT, "net31": "name=eth1,bridge=vmbr0,ip=dhcp", "mp255": "ceph-vm:8,mp=/d"},
        id="last-index",
    ),
    pytest.param(LXC_CONFIG, {**CT, "env": 'A=1\0DOCKYARD_AGENT_LABELS={"zone":"a"}'}, id="env"),
    pytest.param(LXC_CONFIG, {**CT, "tags": "dockyard;pool-a", "delete": "mp0,description"}, id="lists"),
    pytest.param(
        QEMU_CONFIG,
        {**CT, "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1"},
        id="key-alias",
    ),
    pytest.param(
        ("POST", "/nodes/{node}/qemu/{vmid}/agent/exec"), {**CT, "command": "uptime"}, id="one-item-array"
    ),
    pytest.param(("GET", "/access/ticket"), {}, id="no-parameters"),
]


@pytest.mark.parametrize(("endpoint", "params"), ACCEPTED)
def test_accepted(endpoint: tuple[str, str], params: dict[str, Any]) -> None:
    validate(SCHEMA.endpoints[endpoint], params)


def test_typed_values() -> None:
    typed = validate(SCHEMA.endpoints[LXC_CLONE], {**CT, "newid": "101", "full": "0"})
    assert typed == {"node": "pve1", "vmid": 9000, "newid": 101, "full": False}


def test_every_error_at_once() -> None:
    errors = errors_of(LXC_CLONE, {**CT, "newid": "5", "full": "yes", "colour": "red"})
    assert set(errors) == {"newid", "full", "colour"}


def test_property_string_alias_and_default_key() -> None:
    net = SCHEMA.endpoints[QEMU_CONFIG].properties["net[n]"]["format"]
    assert parse_property_string(net, "virtio=BC:24:11:00:00:01,bridge=vmbr0") == {
        "model": "virtio",
        "macaddr": "BC:24:11:00:00:01",
        "bridge": "vmbr0",
    }
    scsi = SCHEMA.endpoints[QEMU_CONFIG].properties["scsi[n]"]["format"]
    assert parse_property_string(scsi, "ceph-vm:vm-100-disk-0,size=16G")["file"] == "ceph-vm:vm-100-disk-0"


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        (
            "GET",
            "/nodes/pve1/tasks/UPID:pve1:0001:0002:0003:vzclone:9000:root@pam:/status",
            "/nodes/{node}/tasks/{upid}/status",
        ),
        ("POST", "/nodes/pve2/qemu/101/agent/file-write", "/nodes/{node}/qemu/{vmid}/agent/file-write"),
    ],
)
def test_paths_match_their_template(method: str, path: str, template: str) -> None:
    matched = SCHEMA.match(method, path)
    assert matched is not None and matched[0].path == template


def test_unknown_method_does_not_match() -> None:
    assert SCHEMA.match("PUT", "/version") is None
    assert SCHEMA.match("GET", "/nodes/pve1/lxc/100/rrd") is None


@pytest.mark.parametrize(
    ("privileges", "endpoint", "params", "refusal"),
    [
        pytest.param(None, LXC_CLONE, {"vmid": 9000, "newid": 100}, None, id="all-privileges"),
        pytest.param(
            {"VM.Clone"},
            LXC_CLONE,
            {"vmid": 9000, "newid": 100},
            "Permission check failed (/vms/100, VM.Allocate)",
            id="clone-without-allocate",
        ),
        pytest.param({"VM.Clone", "VM.Allocate"}, LXC_CLONE, {"vmid": 9000, "newid": 100}, None, id="clone"),
        pytest.param(
            {"VM.Audit"},
            ("POST", "/nodes/{node}/qemu/{vmid}/agent/file-write"),
            {"vmid": 100},
            "Permission check failed (/vms/100, VM.GuestAgent.FileWrite)",
            id="file-write",
        ),
        pytest.param(
            {"VM.GuestAgent.Unrestricted"},
            ("POST", "/nodes/{node}/qemu/{vmid}/agent/file-write"),
            {"vmid": 100},
            None,
            id="file-write-any-of",
        ),
    ],
)
def test_permission_check(
    privileges: set[str] | None, endpoint: tuple[str, str], params: dict[str, Any], refusal: str | None
) -> None:
    principal = Principal(
        "root@pam!limited", False, frozenset(privileges) if privileges is not None else None
    )
    permissions = SCHEMA.endpoints[endpoint].permissions
    if refusal is None:
        check_permissions(principal, permissions, params)
        return
    with pytest.raises(PveError) as raised:
        check_permissions(principal, permissions, params)
    assert (raised.value.status, raised.value.message) == (403, refusal)
