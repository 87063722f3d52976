"""Which unsubmitted deployments the relay submits again, supersedes or leaves (core/submissions.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.submissions import RelayPlan, Unsubmitted, plan_relay

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
AFTER = timedelta(seconds=15)


def row(
    deployment_id: str, seconds_ago: float, service: str = "svc-a", env: str = "env-a", queued: bool = True
) -> Unsubmitted:
    return Unsubmitted(deployment_id, service, env, NOW - timedelta(seconds=seconds_ago), queued)


@pytest.mark.parametrize(
    ("rows", "newest", "expected"),
    [
        pytest.param(
            [row("dep-a", 60)],
            {("svc-a", "env-a"): "dep-a"},
            RelayPlan(submit=["dep-a"]),
            id="newest-submitted",
        ),
        pytest.param(
            [row("dep-a", 60)],
            {("svc-a", "env-a"): "dep-b"},
            RelayPlan(supersede={"dep-a": "dep-b"}),
            id="a-newer-deployment-supersedes-it",
        ),
        pytest.param(
            [row("dep-a", 14)], {("svc-a", "env-a"): "dep-a"}, RelayPlan(wait=["dep-a"]), id="too-recent"
        ),
        pytest.param(
            [row("dep-a", 15)], {("svc-a", "env-a"): "dep-a"}, RelayPlan(submit=["dep-a"]), id="at-the-limit"
        ),
        pytest.param(
            [row("dep-b", 30), row("dep-a", 60)],
            {("svc-a", "env-a"): "dep-b"},
            RelayPlan(submit=["dep-b"], supersede={"dep-a": "dep-b"}),
            id="two-unsubmitted-the-newer-wins",
        ),
        pytest.param(
            [row("dep-b", 30, service="svc-b"), row("dep-a", 60)],
            {("svc-a", "env-a"): "dep-a", ("svc-b", "env-a"): "dep-b"},
            RelayPlan(submit=["dep-a", "dep-b"]),
            id="services-apart-oldest-first",
        ),
        pytest.param(
            [row("dep-a", 1, queued=False), row("dep-b", 60, queued=False)],
            {("svc-a", "env-a"): "dep-c"},
            RelayPlan(confirm=["dep-b", "dep-a"]),
            id="moved-on-from-queued-is-confirmed-at-any-age",
        ),
        pytest.param(
            [row("dep-a", 60, env="env-b")],
            {("svc-a", "env-a"): "dep-x"},
            RelayPlan(submit=["dep-a"]),
            id="other-environment-is-no-newer-deployment",
        ),
    ],
)
def test_plan_relay(rows: list[Unsubmitted], newest: dict[tuple[str, str], str], expected: RelayPlan) -> None:
    assert plan_relay(rows, newest, NOW, AFTER) == expected
