"""Which PVE node a pool's next guest goes to: feasibility in order (pool's nodes, online, unavailable,
template reachable, memory and storage), then the most free memory, ties by name; a reason per rejected
node."""

from __future__ import annotations

from typing import Any

import pytest

from core.proxmox.placement import PveNodeChoice, TemplateError, choose_pve_node
from core.proxmox.resources import GIB, MIB, ClusterSnapshot, cluster_snapshot
from core.proxmox.spec import NodePoolSpec


def node(name: str, free_mib: int = 16_384, status: str = "online") -> dict[str, Any]:
    return {
        "type": "node",
        "id": f"node/{name}",
        "node": name,
        "status": status,
        "maxmem": 65_536 * MIB,
        "mem": (65_536 - free_mib) * MIB,
        "maxcpu": 16,
    }


def storage(
    node: str, name: str = "local-lvm", free_gib: int = 500, shared: int = 0, status: str = "available"
) -> dict[str, Any]:
    return {
        "type": "storage",
        "id": f"storage/{node}/{name}",
        "node": node,
        "storage": name,
        "status": status,
        "shared": shared,
        "maxdisk": 1000 * GIB,
        "disk": (1000 - free_gib) * GIB,
    }


def template(node: str, vmid: int = 9000, kind: str = "lxc", is_template: int = 1) -> dict[str, Any]:
    return {
        "type": kind,
        "id": f"{kind}/{vmid}",
        "vmid": vmid,
        "node": node,
        "name": "tpl",
        "status": "stopped",
        "template": is_template,
    }


def pool(**fields: Any) -> NodePoolSpec:
    return NodePoolSpec(
        **{
            "name": "workers",
            "kind": "lxc",
            "template_vmid": 9000,
            "memory_mib": 2048,
            "disk_gib": 16,
            **fields,
        }
    )


def shared_cluster(*nodes: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node has the shared storage `ceph` (500 GiB free) and the template lives on pve1."""
    rows = list(nodes)
    rows += [storage(n["node"], "ceph", shared=1) for n in nodes]
    return [*rows, template("pve1")]


def choose(
    rows: list[dict[str, Any]],
    spec: NodePoolSpec | None = None,
    template_storage: str = "ceph",
    unavailable: dict[str, str] | None = None,
) -> PveNodeChoice:
    return choose_pve_node(cluster_snapshot(rows), spec or pool(), template_storage, unavailable)


@pytest.mark.parametrize(
    ("rows", "spec", "unavailable", "chosen"),
    [
        pytest.param(
            shared_cluster(node("pve1", 4096), node("pve2", 8192), node("pve3", 6144)),
            pool(),
            {},
            "pve2",
            id="most-free-memory",
        ),
        pytest.param(
            shared_cluster(node("pve2", 8192), node("pve1", 8192)), pool(), {}, "pve1", id="tie-by-name"
        ),
        pytest.param(
            shared_cluster(node("pve1", 4096), node("pve2", 8192)),
            pool(pve_nodes=["pve1"]),
            {},
            "pve1",
            id="pool-nodes",
        ),
        pytest.param(
            shared_cluster(node("pve1", 4096), node("pve2", 8192, status="offline")),
            pool(),
            {},
            "pve1",
            id="offline-skipped",
        ),
        pytest.param(
            shared_cluster(node("pve1", 4096), node("pve2", 8192)),
            pool(),
            {"pve2": "595 No route"},
            "pve1",
            id="unavailable-skipped",
        ),
        pytest.param(shared_cluster(node("pve1", 2048)), pool(), {}, "pve1", id="exact-memory-fits"),
        pytest.param(
            [node("pve1", 4096), node("pve2", 8192), storage("pve1"), storage("pve2"), template("pve1")],
            pool(),
            {},
            "pve1",
            id="local-template-stays-home",
        ),
    ],
)
def test_chooses(
    rows: list[dict[str, Any]], spec: NodePoolSpec, unavailable: dict[str, str], chosen: str
) -> None:
    template_storage = "local-lvm" if any(r.get("storage") == "local-lvm" for r in rows) else "ceph"
    assert choose(rows, spec, template_storage, unavailable).node == chosen


def test_reasons_per_rejected_node() -> None:
    rows = [
        node("pve1", 1024),
        node("pve2", status="offline"),
        node("pve3"),
        node("pve4"),
        node("pve5"),
        node("pve6"),
        node("pve7", 1024),
        storage("pve1", "ceph", shared=1),
        storage("pve3", "ceph", shared=1),
        storage("pve5", "ceph", shared=1),
        storage("pve6", "ceph", shared=1, free_gib=10),
        storage("pve7", "ceph", shared=1, status="unknown"),
        template("pve1"),
    ]
    choice = choose(
        rows,
        pool(pve_nodes=["pve1", "pve2", "pve3", "pve4", "pve6", "pve7"]),
        "ceph",
        {"pve3": "answered 595 No route to host"},
    )
    assert choice.node is None
    assert choice.reasons == {
        "pve1": "needs 2048 MiB memory, 1024 MiB free",
        "pve2": "node is offline",
        "pve3": "node is unavailable: answered 595 No route to host",
        "pve4": "has no storage ceph",
        "pve5": "not one of pool workers's PVE nodes (pve1, pve2, pve3, pve4, pve6, pve7)",
        "pve6": "needs 16 GiB on ceph, 10 GiB free",
        "pve7": "needs 2048 MiB memory, 1024 MiB free; storage ceph is not available",
    }


def test_local_template_reason_and_target() -> None:
    rows = [node("pve1", 1024), node("pve2"), storage("pve1"), storage("pve2"), template("pve1")]
    choice = choose(rows, pool(), "local-lvm")
    assert choice.node is None
    assert choice.reasons["pve2"] == (
        "template 9000 is on pve1's local storage local-lvm: its clones can only be made on pve1"
    )
    shared = choose(shared_cluster(node("pve1", 1024), node("pve2")))
    assert (shared.node, shared.template_node, shared.target, shared.storage) == (
        "pve2",
        "pve1",
        "pve2",
        "ceph",
    )
    home = choose(shared_cluster(node("pve1"), node("pve2", 1024)))
    assert (home.node, home.target) == ("pve1", None)


def test_full_clone_checks_its_own_storage() -> None:
    rows = [
        *shared_cluster(node("pve1"), node("pve2", 8192)),
        storage("pve1", "fast", free_gib=100),
        storage("pve2", "fast", free_gib=5),
    ]
    choice = choose(rows, pool(linked_clone=False, storage="fast", disk_gib=32))
    assert (choice.node, choice.storage) == ("pve1", "fast")
    assert choice.reasons == {"pve2": "needs 32 GiB on fast, 5 GiB free"}


@pytest.mark.parametrize(
    ("rows", "spec", "message"),
    [
        pytest.param(
            [node("pve1")], pool(), "template 9000 of pool workers is not in the cluster", id="missing"
        ),
        pytest.param(
            [node("pve1"), template("pve1", kind="qemu")],
            pool(),
            "is a qemu guest, the pool makes lxc guests",
            id="wrong-kind",
        ),
        pytest.param(
            [node("pve1"), template("pve1", is_template=0)],
            pool(),
            "lxc 9000 of pool workers is not a template: linked clones need one",
            id="not-a-template",
        ),
    ],
)
def test_template_errors(rows: list[dict[str, Any]], spec: NodePoolSpec, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        choose(rows, spec)


def test_full_clone_of_a_plain_guest_is_allowed() -> None:
    rows = [node("pve1"), storage("pve1"), template("pve1", is_template=0)]
    assert choose(rows, pool(linked_clone=False), "local-lvm").node == "pve1"


def test_no_nodes() -> None:
    choice = choose_pve_node(
        ClusterSnapshot(guests=cluster_snapshot([template("pve1")]).guests), pool(), "ceph"
    )
    assert (choice.node, choice.reasons) == (None, {})
