"""Fault knobs for tests, set through `PUT /_sim/faults` (a partial update) and cleared by DELETE.

{"offline_nodes": ["pve2"]}           requests proxied to pve2 answer 595; /cluster/resources shows it offline
{"no_quorum": true}                   every write fails: 500 cluster not ready - no quorum?
{"lock_contention": {"vmids": [100], "wait_seconds": 1}}
                                      taking the config lock of 100 (or of any guest: "vmids": "all")
                                      waits, then fails: can't lock file '...' - got timeout
{"disk_full": ["local-lvm"]}          clones onto that storage ("*": any) fail: no space left on device
{"slow": {"qmclone": 5, "*": 2}}      multiply the duration of tasks of that type (or of every type)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from infra.proxmox.sim.base import PveError


@dataclass
class Faults:
    offline_nodes: set[str] = field(default_factory=set)
    no_quorum: bool = False
    lock_vmids: set[int] | None = field(default_factory=set)  # None: every guest
    lock_wait_seconds: float = 1.0
    disk_full: set[str] = field(default_factory=set)
    slow: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, body: dict[str, Any]) -> None:
        unknown = set(body) - {"offline_nodes", "no_quorum", "lock_contention", "disk_full", "slow"}
        if unknown:
            raise PveError(400, f"unknown fault(s): {', '.join(sorted(unknown))}")
        with self._lock:
            if "offline_nodes" in body:
                self.offline_nodes = {str(node) for node in body["offline_nodes"]}
            if "no_quorum" in body:
                self.no_quorum = bool(body["no_quorum"])
            if "lock_contention" in body:
                contention = body["lock_contention"] or {}
                vmids = contention.get("vmids", [])
                self.lock_vmids = None if vmids == "all" else {int(vmid) for vmid in vmids}
                self.lock_wait_seconds = float(contention.get("wait_seconds", 1.0))
            if "disk_full" in body:
                self.disk_full = {str(storage) for storage in body["disk_full"]}
            if "slow" in body:
                self.slow = {str(kind): float(factor) for kind, factor in (body["slow"] or {}).items()}

    def clear(self) -> None:
        with self._lock:
            self.offline_nodes, self.no_quorum, self.lock_vmids = set(), False, set()
            self.lock_wait_seconds, self.disk_full, self.slow = 1.0, set(), {}

    def view(self) -> dict[str, Any]:
        return {
            "offline_nodes": sorted(self.offline_nodes),
            "no_quorum": self.no_quorum,
            "lock_contention": {
                "vmids": "all" if self.lock_vmids is None else sorted(self.lock_vmids),
                "wait_seconds": self.lock_wait_seconds,
            },
            "disk_full": sorted(self.disk_full),
            "slow": dict(self.slow),
        }

    def lock_contended(self, vmid: int) -> bool:
        return self.lock_vmids is None or vmid in self.lock_vmids

    def storage_full(self, storage: str) -> bool:
        return "*" in self.disk_full or storage in self.disk_full

    def slowdown(self, task_type: str) -> float:
        return self.slow.get(task_type, 1.0) * self.slow.get("*", 1.0)
