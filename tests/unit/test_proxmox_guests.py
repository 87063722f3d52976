"""Guests: names and tags, finding the guest a node's earlier attempt made, vmids, disks, MACs, addresses."""

from __future__ import annotations

from typing import Any

import pytest

from core.proxmox.guests import (
    GuestLookupError,
    belongs_to,
    choose_vmid,
    disk_size_gib,
    disk_storage,
    dockyard_guests,
    find_guest,
    guest_address,
    guest_name,
    guest_tags,
    needs_resize,
    node_tag,
    parse_vmid,
    qemu_mac,
    root_disk,
)
from core.proxmox.resources import cluster_snapshot, parse_tags
from core.proxmox.spec import GuestKind

NODE = "node_3f2a9c0b7d1e"


def guest(
    vmid: int, name: str = "", tags: str = "", node: str = "pve1", kind: str = "lxc", **extra: Any
) -> dict[str, Any]:
    return {
        "type": kind,
        "id": f"{kind}/{vmid}",
        "vmid": vmid,
        "node": node,
        "name": name,
        "tags": tags,
        "status": "stopped",
        **extra,
    }


@pytest.mark.parametrize(
    ("node_id", "name"),
    [
        pytest.param("node_3f2a9c0b7d1e", "dy-3f2a9c0b7d1e", id="dockyard-id"),
        pytest.param("Node_AB_cd", "dy-ab-cd", id="lowercase-and-underscores"),
        pytest.param("x" * 80, "dy-" + "x" * 60, id="truncated-to-63"),
    ],
)
def test_guest_name(node_id: str, name: str) -> None:
    assert guest_name(node_id) == name


def test_guest_name_needs_something() -> None:
    with pytest.raises(ValueError, match="gives no guest name"):
        guest_name("node_")


def test_tags() -> None:
    assert node_tag(NODE) == "dyn-node_3f2a9c0b7d1e"
    assert guest_tags(NODE, ["prod", "PROD", "web", "dockyard"]) == [
        "dockyard",
        "dyn-node_3f2a9c0b7d1e",
        "prod",
        "web",
    ]


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        pytest.param("dockyard;dyn-node_1", ("dockyard", "dyn-node_1"), id="semicolons"),
        pytest.param("a,b c", ("a", "b", "c"), id="commas-and-spaces"),
        pytest.param("", (), id="empty"),
        pytest.param(None, (), id="none"),
    ],
)
def test_parse_tags(text: str | None, tags: tuple[str, ...]) -> None:
    assert parse_tags(text) == tags


@pytest.mark.parametrize(
    ("rows", "vmid"),
    [
        pytest.param(
            [guest(101, "dy-3f2a9c0b7d1e", "dockyard;dyn-node_3f2a9c0b7d1e")], 101, id="tag-and-name"
        ),
        pytest.param([guest(102, "renamed", "dockyard;DYN-node_3f2a9c0b7d1e")], 102, id="tag-any-case"),
        pytest.param([guest(103, "dy-3f2a9c0b7d1e", "", lock="create")], 103, id="name-before-tags"),
        pytest.param([guest(104, "other", "dockyard;dyn-node_ffffffffffff")], None, id="another-nodes"),
        pytest.param(
            [guest(9000, "dy-3f2a9c0b7d1e", "dyn-node_3f2a9c0b7d1e", template=1)], None, id="template"
        ),
        pytest.param([], None, id="none"),
    ],
)
def test_find_guest(rows: list[dict[str, Any]], vmid: int | None) -> None:
    found = find_guest(cluster_snapshot(rows), NODE)
    assert (found.vmid if found else None) == vmid


def test_two_guests_for_one_node_is_a_conflict() -> None:
    rows = [guest(101, "dy-3f2a9c0b7d1e"), guest(102, "x", "dyn-node_3f2a9c0b7d1e", node="pve2", kind="qemu")]
    with pytest.raises(GuestLookupError, match="lxc 101 on pve1, qemu 102 on pve2"):
        find_guest(cluster_snapshot(rows), NODE)


def test_belongs_to_and_dockyard_guests() -> None:
    snapshot = cluster_snapshot(
        [
            guest(105, "a", "dockyard;dyn-n1"),
            guest(101, "b", "Dockyard"),
            guest(102, "c", "web"),
            guest(9000, "t", "dockyard", template=1),
        ]
    )
    assert [g.vmid for g in dockyard_guests(snapshot)] == [101, 105]
    assert belongs_to(snapshot.guests[0], "n1") and not belongs_to(snapshot.guests[1], "n1")


@pytest.mark.parametrize(
    ("taken", "vmid_range", "vmid"),
    [
        pytest.param([], None, None, id="no-range-pve-chooses"),
        pytest.param([], (5000, 5002), 5000, id="first"),
        pytest.param([5000, 5001], (5000, 5002), 5002, id="lowest-free"),
        pytest.param([5000, 5002], (5000, 5002), 5001, id="gap"),
        pytest.param([5000, 5001, 5002], (5000, 5002), None, id="full"),
    ],
)
def test_choose_vmid(taken: list[int], vmid_range: tuple[int, int] | None, vmid: int | None) -> None:
    assert choose_vmid(cluster_snapshot([guest(v) for v in taken]), vmid_range) == vmid


@pytest.mark.parametrize(("value", "vmid"), [("100", 100), (101, 101), (" 102\n", 102)])
def test_parse_vmid(value: object, vmid: int) -> None:
    assert parse_vmid(value) == vmid


@pytest.mark.parametrize("value", ["99", "abc", "1000000000"])
def test_parse_vmid_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_vmid(value)


@pytest.mark.parametrize(
    ("kind", "config", "disk"),
    [
        pytest.param(GuestKind.LXC, {"rootfs": "local-lvm:base-9000-disk-0,size=8G"}, "rootfs", id="lxc"),
        pytest.param(
            GuestKind.QEMU,
            {
                "boot": "order=scsi0;ide2;net0",
                "scsi0": "local-lvm:vm-1-disk-0,size=8G",
                "ide2": "local:cloudinit,media=cdrom",
            },
            "scsi0",
            id="boot-order",
        ),
        pytest.param(
            GuestKind.QEMU,
            {"boot": "order=ide2;virtio0", "virtio0": "ceph:vm-1-disk-0,size=8G", "ide2": "none,media=cdrom"},
            "virtio0",
            id="skips-cdrom",
        ),
        pytest.param(
            GuestKind.QEMU, {"bootdisk": "sata0", "sata0": "ceph:vm-1-disk-0,size=8G"}, "sata0", id="bootdisk"
        ),
        pytest.param(
            GuestKind.QEMU,
            {"virtio1": "a:b,size=1G", "scsi1": "a:c,size=1G"},
            "scsi1",
            id="first-present-scsi-first",
        ),
    ],
)
def test_root_disk(kind: GuestKind, config: dict[str, Any], disk: str) -> None:
    assert root_disk(kind, config) == disk


def test_root_disk_needs_a_disk() -> None:
    with pytest.raises(ValueError, match="no disk"):
        root_disk(GuestKind.QEMU, {"ide2": "local:cloudinit,media=cdrom"})


@pytest.mark.parametrize(
    ("value", "storage", "size"),
    [
        pytest.param("local-lvm:vm-100-disk-0,size=8G", "local-lvm", 8.0, id="gib"),
        pytest.param("volume=ceph:vm-100-disk-0,size=512M", "ceph", 0.5, id="volume-key-mib"),
        pytest.param("local:100/vm-100-disk-0.qcow2,cache=none,size=1T", "local", 1024.0, id="tib"),
        pytest.param("ceph:vm-100-disk-0", "ceph", None, id="no-size"),
    ],
)
def test_disk_storage_and_size(value: str, storage: str, size: float | None) -> None:
    config = {"scsi0": value}
    assert disk_storage(config, "scsi0") == storage
    assert disk_size_gib(config, "scsi0") == size


@pytest.mark.parametrize(
    ("size", "wanted", "resize"),
    [("8G", 16, True), ("16G", 16, False), ("32G", 16, False), (None, 16, True)],
)
def test_needs_resize_only_grows(size: str | None, wanted: int, resize: bool) -> None:
    value = "local-lvm:vm-100-disk-0" + (f",size={size}" if size else "")
    assert needs_resize({"rootfs": value}, "rootfs", wanted) is resize


@pytest.mark.parametrize(
    ("net0", "mac"),
    [
        ("virtio=bc:24:11:00:00:01,bridge=vmbr0", "BC:24:11:00:00:01"),
        ("e1000=BC:24:11:00:00:02,bridge=vmbr1,tag=5", "BC:24:11:00:00:02"),
        ("model=virtio,macaddr=bc:24:11:00:00:03,bridge=vmbr0", "BC:24:11:00:00:03"),
        ("virtio,bridge=vmbr0", None),
        (None, None),
    ],
)
def test_qemu_mac(net0: str | None, mac: str | None) -> None:
    assert qemu_mac(net0) == mac


@pytest.mark.parametrize(
    ("kind", "answer", "address"),
    [
        pytest.param(GuestKind.LXC, None, None, id="lxc-stopped"),
        pytest.param(
            GuestKind.LXC,
            [
                {"name": "lo", "inet": "127.0.0.1/8"},
                {"name": "eth0", "inet": "10.0.0.5/24", "inet6": "fe80::1/64"},
            ],
            "10.0.0.5",
            id="lxc",
        ),
        pytest.param(
            GuestKind.LXC, [{"name": "eth0", "inet6": "2001:db8::5/64"}], "2001:db8::5", id="lxc-v6-only"
        ),
        pytest.param(
            GuestKind.LXC,
            [{"name": "eth0", "inet": "127.0.0.12/8"}],
            "127.0.0.12",
            id="loopback-on-a-real-interface",
        ),
        pytest.param(
            GuestKind.QEMU,
            {
                "result": [
                    {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4"}]},
                    {
                        "name": "ens18",
                        "ip-addresses": [
                            {"ip-address": "fe80::be24:11ff:fe00:1", "ip-address-type": "ipv6"},
                            {"ip-address": "2001:db8::9", "ip-address-type": "ipv6"},
                            {"ip-address": "192.168.1.20", "ip-address-type": "ipv4"},
                        ],
                    },
                ]
            },
            "192.168.1.20",
            id="qemu-ipv4-first",
        ),
        pytest.param(GuestKind.QEMU, {"result": [{"name": "ens18"}]}, None, id="qemu-no-address-yet"),
        pytest.param(
            GuestKind.QEMU,
            {"result": [{"name": "ens18", "ip-addresses": [{"ip-address": "169.254.1.1"}]}]},
            None,
            id="qemu-link-local-only",
        ),
    ],
)
def test_guest_address(kind: GuestKind, answer: object, address: str | None) -> None:
    assert guest_address(kind, answer) == address
