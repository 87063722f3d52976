"""Which PVE node a node pool's new guest goes to: pure, from a `/cluster/resources` snapshot.

Feasibility filters first, in the order reported (as core/scheduler does; a node gets the reason of the first
filter it fails, every failure of that filter listed):

1. the node is one of the pool's `pve_nodes` (any node when the list is empty);
2. the node is online;
3. the node is not marked unavailable (it answered 595 to an earlier step: the caller says why);
4. the template can be cloned there: on the template's own node, or anywhere when its disk is on shared
   storage (PVE allows `target` only then);
5. free memory and free space on the storage the guest's disk will use.

Then the most free memory wins; ties go to the smaller node name, so the same snapshot gives the same choice.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from core.contracts import Contract
from core.proxmox.resources import ClusterSnapshot, PveGuest, PveNode
from core.proxmox.spec import NodePoolSpec


class TemplateError(ValueError):
    """The pool's template cannot be cloned at all (missing, wrong kind, not a template): fix the pool."""


class PveNodeChoice(Contract):
    node: str | None = Field(description="where the guest goes; None when no node can take it")
    template_node: str = Field(description="where the template is: clones are made there")
    storage: str = Field(description="the storage the guest's disk goes to")
    reasons: dict[str, str] = Field(default_factory=dict, description="PVE node → why it was not chosen")

    @property
    def target(self) -> str | None:
        """The clone's `target`, when the guest goes to another node than the template's."""
        return self.node if self.node is not None and self.node != self.template_node else None


def find_template(snapshot: ClusterSnapshot, spec: NodePoolSpec) -> PveGuest:
    template = snapshot.guest(spec.template_vmid)
    if template is None:
        raise TemplateError(f"template {spec.template_vmid} of pool {spec.name} is not in the cluster")
    if template.kind is not spec.kind:
        raise TemplateError(
            f"template {spec.template_vmid} of pool {spec.name} is a {template.kind.value} guest, "
            f"the pool makes {spec.kind.value} guests"
        )
    if spec.linked_clone and not template.template:
        raise TemplateError(
            f"{template.kind.value} {spec.template_vmid} of pool {spec.name} is not a template: "
            "linked clones need one (convert it, or use full clones)"
        )
    return template


def choose_pve_node(
    snapshot: ClusterSnapshot,
    spec: NodePoolSpec,
    template_storage: str,
    unavailable: Mapping[str, str] | None = None,
) -> PveNodeChoice:
    """The PVE node for one more guest of `spec`'s pool, whose template's disk is on `template_storage`.
    TemplateError when the template cannot be cloned anywhere."""
    template = find_template(snapshot, spec)
    storage = spec.storage if not spec.linked_clone and spec.storage else template_storage
    template_store = snapshot.storage(template.node, template_storage)
    template_shared = template_store is not None and template_store.shared
    reasons: dict[str, str] = {}
    feasible: list[PveNode] = []
    for node in sorted(snapshot.nodes, key=lambda n: n.name):
        reason = _rejection(node, snapshot, spec, storage, template, template_storage, template_shared,
                            unavailable or {})  # fmt: skip
        if reason is None:
            feasible.append(node)
        else:
            reasons[node.name] = reason
    best = min(feasible, key=lambda n: (-n.free_memory_mib, n.name), default=None)
    return PveNodeChoice(
        node=best.name if best else None, template_node=template.node, storage=storage, reasons=reasons
    )


def _rejection(
    node: PveNode,
    snapshot: ClusterSnapshot,
    spec: NodePoolSpec,
    storage: str,
    template: PveGuest,
    template_storage: str,
    template_shared: bool,
    unavailable: Mapping[str, str],
) -> str | None:
    if spec.pve_nodes and node.name not in spec.pve_nodes:
        return f"not one of pool {spec.name}'s PVE nodes ({', '.join(spec.pve_nodes)})"
    if not node.online:
        return "node is offline"
    if node.name in unavailable:
        return f"node is unavailable: {unavailable[node.name]}"
    if node.name != template.node and not template_shared:
        return (
            f"template {template.vmid} is on {template.node}'s local storage {template_storage}: "
            f"its clones can only be made on {template.node}"
        )
    shortfalls = []
    if spec.memory_mib > node.free_memory_mib:
        shortfalls.append(f"needs {spec.memory_mib} MiB memory, {node.free_memory_mib} MiB free")
    store = snapshot.storage(node.name, storage)
    if store is None:
        shortfalls.append(f"has no storage {storage}")
    elif not store.available:
        shortfalls.append(f"storage {storage} is not available")
    elif spec.disk_gib > store.free_gib:
        shortfalls.append(f"needs {spec.disk_gib} GiB on {storage}, {int(store.free_gib)} GiB free")
    return "; ".join(shortfalls) or None
