"""Record the workflow histories that test_replay.py replays (run once, commit the JSON files).

    .venv/bin/python -m tests.workflows.record_histories            # every scenario
    .venv/bin/python -m tests.workflows.record_histories nodes      # only the multi-node ones
    .venv/bin/python -m tests.workflows.record_histories pools      # only the node-pool ones
    .venv/bin/python -m tests.workflows.record_histories stability  # only the stability-window ones

Re-record only for an intended, versioned change of the workflows' commands (a new step, a new
order): histories of deploys already running in production keep the old shape, so such a change
also needs `workflow.patched(...)`. The scenarios run on a throw-away dev server with the fakes.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from core.contracts import PlacementSettings
from core.naming import decommission_workflow_id, pool_workflow_id, provision_workflow_id
from core.pools import PoolNodeState
from core.settings import load_settings
from core.temporal import connect
from tests.support.components import TemporalDevServer
from tests.workflows.harness import Dockyard, harness
from tests.workflows.test_fleet_watch import FakeFleet
from tests.workflows.test_pools import SPEC, FakePool, worker
from workflows.fleet import FleetWatchInput, FleetWatchWorkflow
from workflows.pools import (
    DecommissionNodeInput,
    DecommissionNodeWorkflow,
    NodePoolInput,
    NodePoolWorkflow,
    ProvisionNodeInput,
    ProvisionNodeWorkflow,
)
from workflows.worker import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
SERVICE_ID = "svc-replay"
POOL_ID = "pool_replay"
GROUPS = ("deploys", "nodes", "pools", "stability")


async def record(dockyard: Dockyard) -> dict[str, str]:
    """Run every scenario on one entity; answer {file name: history JSON}."""
    fakes = dockyard.fakes
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")
    await dockyard.deploy("dep-b")  # replaces dep-a: previous route, orphans removed
    await dockyard.result("dep-b")

    health = fakes.block("wait_replicas_healthy", deployment="dep-c")
    await dockyard.deploy("dep-c")
    await health.entered.wait()
    await dockyard.deploy("dep-d")  # supersedes dep-c while its health check runs
    await dockyard.result("dep-d")

    fakes.fail("wait_replicas_healthy", "replica dep-e-0 exited", type="ReplicaExited", deployment="dep-e")
    await dockyard.deploy("dep-e")
    await _failed(dockyard, "dep-e")
    fakes.fail("wait_route_live", "traefik did not serve it", type="RoutingTimeout", deployment="dep-f")
    await dockyard.deploy("dep-f")
    await _failed(dockyard, "dep-f")
    await asyncio.sleep(1)  # let the entity finish the workflow task that saw the last child end

    histories = {"service.json": await dockyard.service.fetch_history()}
    for name, deployment_id in [
        ("deploy-active.json", "dep-b"),
        ("deploy-superseded.json", "dep-c"),
        ("deploy-failed-health.json", "dep-e"),
        ("deploy-failed-route.json", "dep-f"),
    ]:
        histories[name] = await dockyard.child(deployment_id).fetch_history()
    return {name: history.to_json() for name, history in histories.items()}


async def record_stability(client: Client) -> dict[str, str]:
    """Releases through the stability window: one that stays stable (its predecessor's replicas removed
    after the window), and one rolled back after it turned unstable in the window."""
    async with harness(client, service_id=f"{SERVICE_ID}-stability") as dockyard:
        await dockyard.deploy("dep-s")
        await dockyard.result("dep-s")
        await dockyard.deploy("dep-t")
        await dockyard.result("dep-t")
        dockyard.fakes.fail(
            "watch_replicas_stable",
            "node fake-node: replica dep-u-0 was not stable for 10s after the cut-over: it exited",
            type="ReplicaUnstable",
            deployment="dep-u",
        )
        await dockyard.deploy("dep-u")
        await _failed(dockyard, "dep-u")
        stable = await dockyard.child("dep-t").fetch_history()
        rolled_back = await dockyard.child("dep-u").fetch_history()
    return {"deploy-stable.json": stable.to_json(), "deploy-rolled-back.json": rolled_back.to_json()}


async def record_nodes(client: Client) -> dict[str, str]:
    """A deploy placed on three enrolled nodes (with a service's placement and overlap settings), and
    the fleet watch through a heal and a reconciliation of unowned replicas."""
    async with harness(client, service_id=f"{SERVICE_ID}-nodes") as dockyard:
        dockyard.fakes.nodes = ("node_a", "node_b", "node_c")
        placement = PlacementSettings(
            cpu_millis=250, memory_mb=128, constraints=["zone!=z"], strategy="binpack"
        )
        await dockyard.deploy(
            "dep-n", replicas=3, placement=placement, overlap_seconds=0.1, draining_seconds=5
        )
        await dockyard.result("dep-n")
        on_nodes = await dockyard.child("dep-n").fetch_history()

    fleet = FakeFleet()
    task_queue = f"fleet-record-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=fleet.activities()):
        handle = await client.start_workflow(
            FleetWatchWorkflow.run,
            FleetWatchInput(probe_interval_seconds=0.05),
            id=f"fleet-watch-{task_queue}",
            task_queue=task_queue,
        )
        await asyncio.wait_for(fleet.round_reached.wait(), 30)
        await handle.terminate("recorded")
        watch = await handle.fetch_history()
    return {"deploy-on-nodes.json": on_nodes.to_json(), "fleet-watch.json": watch.to_json()}


async def record_pools(client: Client) -> dict[str, str]:
    """A provisioning that reaches READY, one compensated after its clone failed, a decommission, and a
    pool growing by one, on a fake PVE cluster (tests/workflows/test_pools.py)."""
    ready = await _provision(client, FakePool(), "node_replayready")

    failed = FakePool(clone_error="clone failed: write error on 'ceph-vm': No space left on device")
    compensated = await _provision(client, failed, "node_replayclone")
    assert failed.rows["node_replayclone"]["state"] is PoolNodeState.FAILED and failed.guests == {}

    node_id = "node_replaygone"
    leaving = FakePool(guests={100: (node_id, "pve1")}, enrolled={node_id})
    queue = _queue()
    async with worker(client, queue, leaving):
        handle = await client.start_workflow(
            DecommissionNodeWorkflow.run,
            DecommissionNodeInput(pool_id=POOL_ID, node_id=node_id, grace_seconds=0.2),
            id=decommission_workflow_id(node_id),
            task_queue=queue,
        )
        await handle.result()
        decommission = await handle.fetch_history()
    assert leaving.rows[node_id]["state"] is PoolNodeState.DESTROYED and leaving.guests == {}

    growing = FakePool(size=1)
    queue = _queue()
    async with worker(client, queue, growing):
        pool = await client.start_workflow(
            NodePoolWorkflow.run,
            NodePoolInput(pool_id=POOL_ID, reconcile_interval_seconds=60),
            id=pool_workflow_id(POOL_ID),
            task_queue=queue,
        )
        # Grown: its guest is READY and the pool has looked again (told by the provisioning) and planned
        # nothing more.
        async with asyncio.timeout(30):
            while True:
                plan = await pool.query(NodePoolWorkflow.last_plan)
                states = [row["state"] for row in growing.rows.values()]
                if states == [PoolNodeState.READY] and plan is not None and plan.provision == 0:
                    break
                await asyncio.sleep(0.05)
        await pool.terminate("recorded")
        grown = await pool.fetch_history()
    return {
        "provision-ready.json": ready.to_json(),
        "provision-compensated.json": compensated.to_json(),
        "decommission.json": decommission.to_json(),
        "pool-grown.json": grown.to_json(),
    }


async def _provision(client: Client, fake: FakePool, node_id: str) -> WorkflowHistory:
    queue = _queue()
    async with worker(client, queue, fake):
        handle = await client.start_workflow(
            ProvisionNodeWorkflow.run,
            ProvisionNodeInput(pool_id=POOL_ID, node_id=node_id, spec=SPEC),
            id=provision_workflow_id(node_id),
            task_queue=queue,
        )
        try:
            await handle.result()
        except WorkflowFailureError:
            assert fake.clone_error is not None, "only the failed clone was expected to fail"
        return await handle.fetch_history()


def _queue() -> str:
    return f"pools-record-{uuid.uuid4().hex[:8]}"


async def _failed(dockyard: Dockyard, deployment_id: str) -> None:
    try:
        await dockyard.result(deployment_id)
    except WorkflowFailureError:
        return
    raise AssertionError(f"{deployment_id} was expected to fail")


async def main(groups: set[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="dockyard-record-") as workdir:
        server = TemporalDevServer(Path(workdir)).start()
        try:
            client = await connect(load_settings(temporal_address=server.address))
            assert client.data_converter is pydantic_data_converter
            histories = {}
            if "deploys" in groups:
                async with harness(client, service_id=SERVICE_ID) as dockyard:
                    histories = await record(dockyard)
            if "nodes" in groups:
                histories |= await record_nodes(client)
            if "pools" in groups:
                histories |= await record_pools(client)
            if "stability" in groups:
                histories |= await record_stability(client)
        finally:
            server.stop()
    HISTORIES.mkdir(exist_ok=True)
    for name, text in histories.items():
        (HISTORIES / name).write_text(text + "\n")
        print(f"wrote {HISTORIES / name}")


if __name__ == "__main__":
    chosen = set(sys.argv[1:]) or set(GROUPS)
    if not chosen <= set(GROUPS):
        sys.exit(f"usage: python -m tests.workflows.record_histories [{' | '.join(GROUPS)}]")
    asyncio.run(main(chosen))
