"""No deploy step waits or retries forever: every activity a deploy schedules has a deadline and a
bounded number of attempts, and an error no activity classified ends the deploy FAILED with its step
and the error's own words (real Temporal dev server, activities replaced by fakes)."""

from __future__ import annotations

import time

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError

from core.contracts import DeploymentStatus
from tests.workflows.harness import Dockyard

pytestmark = pytest.mark.timeout(120)


async def test_every_activity_of_a_deploy_has_a_deadline_and_bounded_attempts(dockyard: Dockyard) -> None:
    await dockyard.deploy("dep-a")
    await dockyard.result("dep-a")

    history = await dockyard.child("dep-a").fetch_history()
    scheduled = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert len(scheduled) >= 10
    for attributes in scheduled:
        name = attributes.activity_type.name
        assert 0 < attributes.schedule_to_close_timeout.ToSeconds() <= 75 * 60, name
        assert 0 < attributes.retry_policy.maximum_attempts <= 10, name


async def test_an_unclassified_error_fails_the_step_after_bounded_attempts(dockyard: Dockyard) -> None:
    dockyard.fakes.break_(
        "publish_route", "duplicate key value violates unique constraint routes_hostname_key"
    )
    started = time.monotonic()

    await dockyard.deploy("dep-a")
    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-a")

    took = time.monotonic() - started
    fakes = dockyard.fakes
    final = fakes.last_update("dep-a")
    assert (final.status, final.failed_step) == (DeploymentStatus.FAILED, "route")
    assert final.message == "duplicate key value violates unique constraint routes_hostname_key"
    assert fakes.names().count("publish_route") == 10  # the tenth attempt is the last
    assert fakes.live_replicas == {}  # compensated: the new replicas are gone
    assert took < 60, f"took {took:.1f}s"


async def test_a_worker_crash_in_the_health_step_is_bounded_too(dockyard: Dockyard) -> None:
    dockyard.fakes.break_("wait_replicas_healthy", "agent answered garbage")

    await dockyard.deploy("dep-a")
    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-a")

    final = dockyard.fakes.last_update("dep-a")
    assert (final.status, final.failed_step, final.message) == (
        DeploymentStatus.FAILED,
        "health",
        "agent answered garbage",
    )
