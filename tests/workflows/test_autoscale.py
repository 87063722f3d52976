"""AutoscalerWorkflow on a real Temporal server with fake activities: a load step scales the service up at
once, the load's end scales it down only after the scale-down window; a round that cannot observe decides
nothing; a refused scale is recorded and tried again; every decision that changes (or wants to change)
the replicas is recorded with its inputs; a worker that stops mid-run and another that takes over leave
the count the completed scales made; the policy removed ends the workflow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.autoscaling import AutoscaleState, AutoscaleTarget, DecisionRecord, ObserveRequest, ScaleOrder
from core.autoscaling import AutoscalingPolicy, Behaviour, Observation, ReplicaUsage, Targets
from workflows.autoscale import AutoscalerInput, AutoscalerWorkflow
from workflows.worker import WORKFLOWS

pytestmark = pytest.mark.timeout(90)

POLICY = AutoscalingPolicy(
    min_replicas=1,
    max_replicas=6,
    targets=Targets(cpu_percent=50),
    behaviour=Behaviour(scale_down_window_seconds=3, period_seconds=1),
)


@dataclass
class FakeService:
    """One service's ACTIVE deployment: its replicas run `load` CPUs of work between them."""

    replicas: int = 2
    load: float = 1.0
    policy: AutoscalingPolicy | None = POLICY
    blind_rounds: int = 0  # the next observations fail (Prometheus away)
    refuse_scales: int = 0  # the next scales are refused (a deploy in progress)
    decisions: list[DecisionRecord] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @activity.defn(name="load_autoscaling")
    async def load_autoscaling(self, target: AutoscaleTarget) -> AutoscaleState:
        return AutoscaleState(
            policy=self.policy, deployment_id="dep_1", replicas=self.replicas, cpu_millis=1000
        )

    @activity.defn(name="observe")
    async def observe(self, request: ObserveRequest) -> Observation:
        if self.blind_rounds:
            self.blind_rounds -= 1
            raise ApplicationError(
                "Prometheus at http://127.0.0.1:9090: connection refused", non_retryable=True
            )
        share = self.load / request.replicas
        replicas = [ReplicaUsage(replica=f"dep-1-{i}", cpu=share) for i in range(request.replicas)]
        return Observation(current=request.replicas, replicas=replicas)

    @activity.defn(name="scale")
    async def scale(self, order: ScaleOrder) -> str:
        if self.refuse_scales:
            self.refuse_scales -= 1
            return "scale refused: deployment dep_2 is being deployed; scale once its deploy is done"
        self.replicas = order.replicas
        self.counts.append(order.replicas)
        self.changed.set()
        return "scaled"

    @activity.defn(name="record_decision")
    async def record_decision(self, record: DecisionRecord) -> None:
        if all(d.at != record.at for d in self.decisions):
            self.decisions.append(record)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.load_autoscaling, self.observe, self.scale, self.record_decision]


async def start(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    service = f"svc_{uuid.uuid4().hex[:8]}"
    return await client.start_workflow(
        AutoscalerWorkflow.run,
        AutoscalerInput(service_id=service, environment_id="env_1", evaluation_seconds=0.3),
        id=f"autoscale/{service}/env_1",
        task_queue=queue,
    )


async def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "never got there"
        await asyncio.sleep(0.05)


async def test_a_load_step_scales_up_at_once_and_down_after_the_window(temporal_client: Client) -> None:
    fake = FakeService(replicas=2, load=2.0)  # 100% each for a 50% target: 4 replicas
    queue = f"autoscale-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_client, task_queue=queue, workflows=WORKFLOWS, activities=fake.activities()):
        handle = await start(temporal_client, queue)
        await until(lambda: any(d.desired == 4 for d in fake.decisions))  # recorded after the scale
        up = next(d for d in fake.decisions if d.desired == 4)
        assert (up.current, up.recommendation, up.result) == (2, 4, "scaled")
        assert up.reason == "cpu 100% for a target of 50%: 2 → 4"
        assert up.inputs["metrics"][0]["metric"] == "cpu" and len(up.inputs["replicas"]) == 2

        fake.load = 0.4  # the load ends: 1 replica is enough, once the 3 s window has passed
        ended = asyncio.get_running_loop().time()
        await until(lambda: fake.replicas == 1)
        assert asyncio.get_running_loop().time() - ended >= 2.5
        held = [d for d in fake.decisions if d.result == "held"]
        assert held and "stabilization window" in held[0].reason
        assert fake.counts == [4, 1]  # no flapping on the way
        await handle.terminate("test over")


async def test_blind_rounds_decide_nothing_and_a_refused_scale_is_tried_again(
    temporal_client: Client,
) -> None:
    fake = FakeService(replicas=1, load=1.0, blind_rounds=3, refuse_scales=1)
    queue = f"autoscale-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_client, task_queue=queue, workflows=WORKFLOWS, activities=fake.activities()):
        handle = await start(temporal_client, queue)
        await until(lambda: fake.replicas == 2 and any(d.result == "scaled" for d in fake.decisions))
        refused = [d for d in fake.decisions if d.result.startswith("scale refused")]
        assert len(refused) == 1 and refused[0].desired == 2
        assert "not observed" not in await handle.query(AutoscalerWorkflow.last_decision)
        await handle.terminate("test over")


async def test_a_new_worker_carries_on_from_the_count_the_scales_left(temporal_client: Client) -> None:
    fake = FakeService(replicas=1, load=2.0)
    queue = f"autoscale-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_client, task_queue=queue, workflows=WORKFLOWS, activities=fake.activities()):
        handle = await start(temporal_client, queue)
        await until(lambda: fake.replicas == 4)
    fake.load = 4.0  # while no worker runs
    async with Worker(temporal_client, task_queue=queue, workflows=WORKFLOWS, activities=fake.activities()):
        await until(lambda: fake.replicas == 6)  # max_replicas
        assert fake.counts == [4, 6]  # 1 → 4 at once (within the step limit), then 6 from where it was
        fake.policy = None  # autoscaling turned off
        await handle.signal(AutoscalerWorkflow.reconsider)
        await asyncio.wait_for(handle.result(), 30)
        assert await handle.query(AutoscalerWorkflow.last_decision) == "autoscaling was turned off"
