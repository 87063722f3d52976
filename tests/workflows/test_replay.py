"""Replay committed histories against today's workflow code: a change that would break deploys already
in flight (a step added, removed or reordered without `workflow.patched`) fails here.

The histories come from tests/workflows/record_histories.py (a happy path, a replacement, a supersede,
failures at health and at routing, and the entity that ran them all; a deploy placed on three nodes;
a deploy through its stability window and one rolled back in it;
the fleet watch through a heal and a reconciliation; a node pool's guest provisioned to READY, one
compensated after its clone failed, one decommissioned, and a pool growing by one).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from core.contracts import DeployResult
from workflows.deploy import DeployParams, DeployWorkflow
from workflows.fleet import FleetWatchWorkflow
from workflows.pools import DecommissionNodeWorkflow, NodePoolWorkflow, ProvisionNodeWorkflow
from workflows.service import ServiceWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_the_recorded_histories_are_all_there() -> None:
    assert {path.name for path in HISTORIES} == {
        "service.json",
        "deploy-active.json",
        "deploy-superseded.json",
        "deploy-failed-health.json",
        "deploy-failed-route.json",
        "deploy-on-nodes.json",
        "deploy-stable.json",
        "deploy-rolled-back.json",
        "fleet-watch.json",
        "provision-ready.json",
        "provision-compensated.json",
        "decommission.json",
        "pool-grown.json",
    }


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_a_recorded_history_replays_on_todays_code(path: Path) -> None:
    replayer = Replayer(
        workflows=[
            ServiceWorkflow,
            DeployWorkflow,
            FleetWatchWorkflow,
            NodePoolWorkflow,
            ProvisionNodeWorkflow,
            DecommissionNodeWorkflow,
        ],
        data_converter=pydantic_data_converter,
    )

    result = await replayer.replay_workflow(load(path))

    assert result.replay_failure is None


@workflow.defn(name="DeployWorkflow", sandboxed=False)
class DeployWorkflowWithAnExtraStep(DeployWorkflow):
    """Today's DeployWorkflow with a timer before its first step: the kind of change replay must catch."""

    @workflow.run
    async def run(self, params: DeployParams) -> DeployResult:
        await workflow.sleep(1)
        return await super().run(params)


async def test_a_non_deterministic_change_fails_the_replay() -> None:
    replayer = Replayer(
        workflows=[ServiceWorkflow, DeployWorkflowWithAnExtraStep], data_converter=pydantic_data_converter
    )

    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(Path(__file__).parent / "histories" / "deploy-active.json"))
