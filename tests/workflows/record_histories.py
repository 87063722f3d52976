"""Record the workflow histories that test_replay.py replays (run once, commit the JSON files).

    .venv/bin/python -m tests.workflows.record_histories            # every scenario
    .venv/bin/python -m tests.workflows.record_histories nodes      # only the multi-node ones

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

from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from core.contracts import PlacementSettings
from core.settings import load_settings
from core.temporal import connect
from tests.support.components import TemporalDevServer
from tests.workflows.harness import Dockyard, harness
from tests.workflows.test_fleet_watch import FakeFleet
from workflows.fleet import FleetWatchInput, FleetWatchWorkflow
from workflows.worker import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
SERVICE_ID = "svc-replay"


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


async def _failed(dockyard: Dockyard, deployment_id: str) -> None:
    try:
        await dockyard.result(deployment_id)
    except WorkflowFailureError:
        return
    raise AssertionError(f"{deployment_id} was expected to fail")


async def main(only_nodes: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="dockyard-record-") as workdir:
        server = TemporalDevServer(Path(workdir)).start()
        try:
            client = await connect(load_settings(temporal_address=server.address))
            assert client.data_converter is pydantic_data_converter
            histories = {}
            if not only_nodes:
                async with harness(client, service_id=SERVICE_ID) as dockyard:
                    histories = await record(dockyard)
            histories |= await record_nodes(client)
        finally:
            server.stop()
    HISTORIES.mkdir(exist_ok=True)
    for name, text in histories.items():
        (HISTORIES / name).write_text(text + "\n")
        print(f"wrote {HISTORIES / name}")


if __name__ == "__main__":
    asyncio.run(main(only_nodes=sys.argv[1:] == ["nodes"]))
