"""Growing a node pool from 1 to 5 LXC guests against the PVE simulator, at the simulator's own task durations
(speed 1: a linked clone takes 1 s, a start 1 s, a resize 0.5 s), with the whole platform doing the work.

Printed beside the total, from the simulator's task lists (`GET /nodes/{node}/tasks`, as PVE keeps them):
each task the growth ran, the sum of their nominal durations, and the critical path those tasks impose (the
LXC clones run one after the other, PVE locking the template for each; after the last clone, its guest's
resize and start). The rest of the total is the platform's: workflows, the activities' calls and polling,
the agent booting and enrolling, its first heartbeat.

Prints figures; asserts nothing about time, only that the pool reaches 5 READY guests, one guest each.
Run: pytest tests/bench/test_pool_bench.py -m bench -s
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from infra.proxmox.sim.app import Timing
from tests.support.pools import TemplateSimulator, pool_guests, pool_platform, ready, wait_pool
from tests.support.pve import PveSimulator

pytestmark = [pytest.mark.bench, pytest.mark.timeout(900)]

TASK_SPEED = 1.0
# Task types (the UPID's) and what each takes at speed 1.
NOMINAL = {
    "vzclone": Timing().linked_clone,
    "vzstart": Timing().start,
    "resize": Timing().resize,
    "vzshutdown": Timing().shutdown,
    "vzstop": Timing().stop,
    "vzdestroy": Timing().destroy,
}


@pytest.fixture(scope="module")
def pve_cluster(workdir: Path) -> Iterator[PveSimulator]:
    with TemplateSimulator(workdir / "bench-template-env.json", task_speed=TASK_SPEED) as simulator:
        yield simulator


def test_growing_a_pool_from_one_to_five_guests(
    docker_client: docker.DockerClient, workdir: Path, pve_cluster: TemplateSimulator
) -> None:
    with pool_platform(docker_client, workdir / "pool-bench", pve_cluster) as platform:
        created = platform.api.post(
            "/v1/node-pools",
            json={
                "name": "bench",
                "kind": "lxc",
                "template_vmid": 9000,
                "max_size": 5,
                "size": 1,
                "memory_mib": 512,
            },
        )
        assert created.status_code == 201, created.text
        pool_id = created.json()["id"]
        first_started = time.monotonic()
        wait_pool(platform.api, pool_id, lambda p: ready(p) == 1)
        first = time.monotonic() - first_started

        since = time.time()
        started = time.monotonic()
        resized = platform.api.patch(f"/v1/node-pools/{pool_id}", json={"size": 5})
        assert resized.status_code == 200, resized.text
        grown = wait_pool(platform.api, pool_id, lambda p: ready(p) == 5, timeout=600)
        total = time.monotonic() - started

        tasks = [
            task
            for node in ("pve1", "pve2", "pve3")
            for task in pve_cluster.proxmox().nodes(node).tasks.get(limit=1000)
            if task["starttime"] >= int(since)
        ]
        assert Counter(g["node_id"] for g in pool_guests(pve_cluster)) == {
            n["node_id"]: 1 for n in grown["nodes"]
        }
        deleted = platform.api.delete(f"/v1/node-pools/{pool_id}")
        assert deleted.status_code == 202, deleted.text
        wait_pool(platform.api, pool_id, lambda p: p["removed_at"] is not None, timeout=300)

    kinds = Counter(task["type"] for task in tasks)
    nominal = sum(NOMINAL.get(task["type"], 0.0) for task in tasks) / TASK_SPEED
    listed = sum(task.get("endtime", task["starttime"]) - task["starttime"] for task in tasks)
    clones = kinds["vzclone"] * NOMINAL["vzclone"] / TASK_SPEED
    critical = clones + (NOMINAL["resize"] + NOMINAL["vzstart"]) / TASK_SPEED
    print(
        f"\n[pool bench] first guest READY in {first:.1f} s; 1 → 5 guests READY in {total:.1f} s "
        f"(task speed {TASK_SPEED:g})\n"
        f"[pool bench] simulator tasks: {dict(sorted(kinds.items()))}; nominal sum {nominal:.1f} s "
        f"(task list, whole seconds: {listed} s); critical path {critical:.1f} s "
        f"({kinds['vzclone']} serialized clones, then a resize and a start)\n"
        f"[pool bench] platform overhead over the critical path: {total - critical:.1f} s "
        f"({(total - critical) / 4:.1f} s per guest)"
    )
