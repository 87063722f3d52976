"""Record the workflow histories that test_replay.py replays (run once, commit the JSON files).

    .venv/bin/python -m tests.workflows.record_histories

Re-record only for an intended, versioned change of the workflows' commands (a new step, a new
order): histories of deploys already running in production keep the old shape, so such a change
also needs `workflow.patched(...)`. The scenarios run on a throw-away dev server with the fakes.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

from core.settings import load_settings
from core.temporal import connect
from tests.support.components import TemporalDevServer
from tests.workflows.harness import Dockyard, harness

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


async def _failed(dockyard: Dockyard, deployment_id: str) -> None:
    try:
        await dockyard.result(deployment_id)
    except WorkflowFailureError:
        return
    raise AssertionError(f"{deployment_id} was expected to fail")


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dockyard-record-") as workdir:
        server = TemporalDevServer(Path(workdir)).start()
        try:
            client = await connect(load_settings(temporal_address=server.address))
            assert client.data_converter is pydantic_data_converter
            async with harness(client, service_id=SERVICE_ID) as dockyard:
                histories = await record(dockyard)
        finally:
            server.stop()
    HISTORIES.mkdir(exist_ok=True)
    for name, text in histories.items():
        (HISTORIES / name).write_text(text + "\n")
        print(f"wrote {HISTORIES / name}")


if __name__ == "__main__":
    asyncio.run(main())
