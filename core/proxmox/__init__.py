"""Dockyard on Proxmox VE, the pure part: node pool specs, placement of guests on PVE nodes, guest naming and
lookup, join data, every request as data (params.py), and PVE's task states and errors as values.
No I/O here: activities/proxmox/ runs the requests through proxmoxer. See infra/proxmox/README.md."""

from core.proxmox.errors import PveError, PveErrorKind, classify, classify_task_failure
from core.proxmox.joindata import JoinData
from core.proxmox.params import PveCall
from core.proxmox.placement import PveNodeChoice, TemplateError, choose_pve_node
from core.proxmox.resources import ClusterSnapshot, PveGuest, PveNode, PveStorage, cluster_snapshot
from core.proxmox.spec import GuestKind, NodePoolSpec
from core.proxmox.tasks import TaskPhase, TaskState, interpret_task_status
from core.proxmox.upid import Upid, parse_upid

__all__ = [
    "ClusterSnapshot",
    "GuestKind",
    "JoinData",
    "NodePoolSpec",
    "PveCall",
    "PveError",
    "PveErrorKind",
    "PveGuest",
    "PveNode",
    "PveNodeChoice",
    "PveStorage",
    "TaskPhase",
    "TaskState",
    "TemplateError",
    "Upid",
    "choose_pve_node",
    "classify",
    "classify_task_failure",
    "cluster_snapshot",
    "interpret_task_status",
    "parse_upid",
]
