"""What this machine offers and uses, read from the kernel (no extra dependency): CPUs, memory, disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.contracts import NodeResources

MEMINFO = Path("/proc/meminfo")


def capacity_and_usage(disk_path: str = "/") -> tuple[NodeResources, NodeResources]:
    memory = _meminfo()
    total_mb = memory.get("MemTotal", 0) // 1024
    available_mb = memory.get("MemAvailable", 0) // 1024
    disk = shutil.disk_usage(disk_path)
    cpus = os.cpu_count() or 1
    capacity = NodeResources(cpu_millis=cpus * 1000, memory_mb=total_mb, disk_mb=disk.total // 2**20)
    usage = NodeResources(
        cpu_millis=min(cpus * 1000, int(os.getloadavg()[0] * 1000)),  # runnable threads, as millicores
        memory_mb=max(0, total_mb - available_mb),
        disk_mb=(disk.total - disk.free) // 2**20,
    )
    return capacity, usage


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in KiB, by field."""
    values = {}
    for line in MEMINFO.read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0])
    return values
