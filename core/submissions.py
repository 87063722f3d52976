"""Which recorded deployments the relay hands to Temporal again, and which it supersedes.

A deployment is recorded (QUEUED, with its DeployRequest) before the API submits it; when the API
crashes in between, or Temporal's answer is lost, it stays unsubmitted. The relay (domain/submissions.py)
decides for each such deployment:

- its status moved on from QUEUED: its workflows moved it, so Temporal has it; confirm it.

and, once it is older than `after` (the API that recorded it is done with it by then, one way or
the other):

- it is the newest deployment of its service and environment: submit it (keyed by its id, so a
  deployment Temporal already has is not deployed twice);
- a newer deployment of its service and environment exists: supersede it. Submitting it would make
  it supersede the newer one in the ServiceWorkflow, and deploy an older version over a newer.

Before acting on either, the relay asks Temporal whether the deployment's release ever started: one
that did is only marked submitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Unsubmitted:
    deployment_id: str
    service_id: str
    environment_id: str
    created_at: datetime
    queued: bool = True  # still QUEUED: nothing has shown Temporal has it


@dataclass
class RelayPlan:
    confirm: list[str] = field(default_factory=list)  # Temporal has them: mark them submitted
    submit: list[str] = field(default_factory=list)  # oldest first
    supersede: dict[str, str] = field(default_factory=dict)  # deployment id → the newer one
    wait: list[str] = field(default_factory=list)  # too recent: the API may be submitting it now


def plan_relay(
    unsubmitted: Iterable[Unsubmitted],
    newest: Mapping[tuple[str, str], str],
    now: datetime,
    after: timedelta,
) -> RelayPlan:
    """`newest` maps (service id, environment id) to its newest deployment, whatever its status."""
    plan = RelayPlan()
    for row in sorted(unsubmitted, key=lambda r: (r.created_at, r.deployment_id)):
        latest = newest.get((row.service_id, row.environment_id), row.deployment_id)
        if not row.queued:
            plan.confirm.append(row.deployment_id)
        elif now - row.created_at < after:
            plan.wait.append(row.deployment_id)
        elif latest == row.deployment_id:
            plan.submit.append(row.deployment_id)
        else:
            plan.supersede[row.deployment_id] = latest
    return plan
