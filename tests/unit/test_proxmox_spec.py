"""NodePoolSpec: a pool's spec is valid when built, and each refusal names the field and why."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.proxmox.spec import GuestKind, NodePoolSpec

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx1fXQ5JxkL0q0bYk7QJ8u3c0fOa2V3cQn0mL4xS6e9 ops@example"


def spec(**fields: Any) -> NodePoolSpec:
    return NodePoolSpec(**{"name": "workers", "kind": "lxc", "template_vmid": 9000, **fields})


def test_defaults() -> None:
    pool = spec()
    assert pool.kind is GuestKind.LXC
    assert (pool.cores, pool.memory_mib, pool.disk_gib, pool.bridge) == (2, 2048, 16, "vmbr0")
    assert (pool.linked_clone, pool.storage, pool.min_size, pool.max_size) == (True, None, 0, 1)
    assert (pool.pve_nodes, pool.tags, pool.labels, pool.vlan_tag, pool.vmid_range) == (
        [],
        [],
        {},
        None,
        None,
    )


def test_a_full_qemu_pool() -> None:
    pool = spec(
        kind="qemu",
        pve_nodes=["pve1", "pve2"],
        cores=4,
        memory_mib=8192,
        disk_gib=64,
        vlan_tag=20,
        tags=["prod", "web"],
        linked_clone=False,
        storage="ceph-vm",
        min_size=2,
        max_size=10,
        labels={"zone": "a", "dockyard.io/pool": "workers"},
        vmid_range=(5000, 5999),
        ciuser="dockyard",
        sshkeys=[f"  {KEY}\n"],
        ipconfig0="ip=10.0.0.50/24,gw=10.0.0.1",
    )
    assert pool.sshkeys == [KEY]
    assert pool.vmid_range == (5000, 5999)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        pytest.param({"name": "Workers"}, "name", "should match pattern", id="name-upper"),
        pytest.param({"name": "w" * 41}, "name", "should match pattern", id="name-long"),
        pytest.param({"kind": "docker"}, "kind", "'lxc' or 'qemu'", id="kind"),
        pytest.param({"template_vmid": 99}, "template_vmid", "greater than or equal to 100", id="vmid-low"),
        pytest.param({"pve_nodes": ["pve_1"]}, "pve_nodes.0", "should match pattern", id="node-name"),
        pytest.param({"pve_nodes": ["pve1", "pve1"]}, "pve_nodes", "more than once", id="node-twice"),
        pytest.param({"cores": 0}, "cores", "greater than or equal to 1", id="cores"),
        pytest.param({"memory_mib": 32}, "memory_mib", "greater than or equal to 64", id="memory"),
        pytest.param({"disk_gib": 0}, "disk_gib", "greater than or equal to 1", id="disk"),
        pytest.param({"bridge": "vmbr0;x"}, "bridge", "should match pattern", id="bridge"),
        pytest.param({"vlan_tag": 4095}, "vlan_tag", "less than or equal to 4094", id="vlan"),
        pytest.param({"tags": ["has space"]}, "tags", "is not a PVE tag", id="tag-format"),
        pytest.param({"tags": ["dockyard"]}, "tags", "Dockyard's own tag", id="tag-reserved"),
        pytest.param({"tags": ["dyn-node_1"]}, "tags", "Dockyard's own tag", id="tag-reserved-node"),
        pytest.param({"storage": "ceph"}, "storage", "only for full clones", id="storage-linked"),
        pytest.param(
            {"linked_clone": False, "storage": "1bad"}, "storage", "should match pattern", id="storage-format"
        ),
        pytest.param({"min_size": 3, "max_size": 2}, "max_size", "at least min_size (3)", id="min-over-max"),
        pytest.param({"max_size": 0}, "max_size", "greater than or equal to 1", id="max-zero"),
        pytest.param({"labels": {"-zone": "a"}}, "labels", "label key '-zone'", id="label-key"),
        pytest.param({"labels": {"zone": "a\nb"}}, "labels", "control characters", id="label-value"),
        pytest.param({"vmid_range": (6000, 5000)}, "vmid_range", "after the last", id="range-order"),
        pytest.param({"ciuser": "dockyard"}, "ciuser", "only for qemu pools", id="ciuser-lxc"),
        pytest.param({"sshkeys": [KEY]}, "sshkeys", "only for qemu pools", id="sshkeys-lxc"),
        pytest.param({"ipconfig0": "ip=dhcp"}, "ipconfig0", "only for qemu pools", id="ipconfig-lxc"),
        pytest.param(
            {"kind": "qemu", "sshkeys": ["not a key"]},
            "sshkeys",
            "entry 0 is not one OpenSSH",
            id="sshkey-format",
        ),
        pytest.param(
            {"kind": "qemu", "sshkeys": [f"{KEY}\n{KEY}"]}, "sshkeys", "entry 0", id="two-keys-in-one"
        ),
        pytest.param({"surprise": 1}, "surprise", "Extra inputs are not permitted", id="unknown-field"),
    ],
)
def test_refusals_name_the_field(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        spec(**fields)
    errors = raised.value.errors()
    assert [".".join(str(part) for part in error["loc"]) for error in errors] == [field]
    assert message in errors[0]["msg"]
