"""TeardownWorkflow on a real Temporal server with fake activities: every step, in order, for every
service; a failing step retried; a worker that dies mid-teardown replaced by a new one that finishes."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities.contracts import OrphanQuery, RouteKey
from core.naming import teardown_workflow_id
from tests.workflows.fakes import FakeActivities
from workflows.teardown import TeardownRequest, TeardownWorkflow
from workflows.worker import WORKFLOWS

pytestmark = pytest.mark.timeout(120)

IMAGES = ("registry.test/web@sha256:" + "a" * 64, "registry.test/api@sha256:" + "b" * 64)


def request() -> TeardownRequest:
    return TeardownRequest(environment_id=f"env-{uuid.uuid4().hex[:8]}", service_ids=["svc-web", "svc-api"])


def worker(client: Client, task_queue: str, fakes: FakeActivities) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=fakes.activities())


async def test_a_teardown_stops_removes_deletes_the_images_and_then_the_records(
    temporal_client: Client,
) -> None:
    fakes = FakeActivities()
    fakes.environment_images = IMAGES
    task_queue = f"teardown-{uuid.uuid4().hex[:8]}"
    teardown = request()
    env = teardown.environment_id
    async with worker(temporal_client, task_queue, fakes):
        deleted = await temporal_client.execute_workflow(
            TeardownWorkflow.run, teardown, id=teardown_workflow_id(env), task_queue=task_queue
        )

    assert deleted == list(IMAGES)
    keys = {RouteKey(service_id=s, environment_id=env) for s in teardown.service_ids}
    assert set(fakes.args("stop_service_workflow")) == keys
    assert set(fakes.args("unpublish_route")) == keys
    removed = fakes.args("remove_orphan_replicas")
    assert sorted(removed, key=lambda q: q.service_id) == [
        OrphanQuery(service_id=s, environment_id=env, keep_deployment_ids=[]) for s in ("svc-api", "svc-web")
    ]
    assert sorted(fakes.args("delete_image")) == sorted(IMAGES)
    names = fakes.names()
    last_stop = max(i for i, n in enumerate(names) if n == "stop_service_workflow")
    first_removal = min(i for i, n in enumerate(names) if n in ("unpublish_route", "remove_orphan_replicas"))
    assert last_stop < first_removal  # nothing is removed while a deploy may still be running
    assert names[-1] == "delete_environment"


async def test_a_teardown_outlives_the_worker_that_started_it(temporal_client: Client) -> None:
    """The worker dies while replicas are being removed; a new worker (fresh process state) resumes the
    same workflow and finishes it: every step after the interruption runs, the records go last."""
    task_queue = f"teardown-{uuid.uuid4().hex[:8]}"
    teardown = request()
    first = FakeActivities()
    removing = first.block("remove_orphan_replicas")
    async with worker(temporal_client, task_queue, first):
        handle = await temporal_client.start_workflow(
            TeardownWorkflow.run,
            teardown,
            id=teardown_workflow_id(teardown.environment_id),
            task_queue=task_queue,
        )
        await removing.entered.wait()
    # The first worker is gone mid-step; its blocked activity never completed.
    assert "delete_environment" not in first.names()

    second = FakeActivities()
    second.environment_images = IMAGES[:1]
    async with worker(temporal_client, task_queue, second):
        assert await handle.result() == [IMAGES[0]]

    assert len(second.args("remove_orphan_replicas")) >= 1
    assert second.args("delete_image") == [IMAGES[0]]
    assert second.names()[-1] == "delete_environment"


async def test_a_second_request_joins_the_running_teardown(temporal_client: Client) -> None:
    fakes = FakeActivities()
    gate = fakes.block("delete_environment")
    task_queue = f"teardown-{uuid.uuid4().hex[:8]}"
    teardown = request()
    workflow_id = teardown_workflow_id(teardown.environment_id)
    async with worker(temporal_client, task_queue, fakes):
        first = await temporal_client.start_workflow(
            TeardownWorkflow.run, teardown, id=workflow_id, task_queue=task_queue
        )
        await gate.entered.wait()
        again = await temporal_client.start_workflow(
            TeardownWorkflow.run,
            teardown,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert again.result_run_id == first.result_run_id
        gate.release()
        await first.result()
    assert fakes.names().count("delete_environment") == 1
