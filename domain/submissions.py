"""Handing deployments to Temporal: `submit` at once, the outbox, and the relay that empties it
after a crash.

A deployment is recorded QUEUED with its DeployRequest (`deploy_request`) in the transaction that
creates it (with the webhook delivery that caused it, if any); the route then submits it and marks
it submitted. What a crash or a lost answer leaves in between, the relay finishes:

    route:  commit(QUEUED + deploy_request) ──▶ submit ──▶ mark_submitted
                                   │ crash, or no answer (mark_unconfirmed)
                                   ▼
    relay:  every RELAY_INTERVAL_SECONDS in the API process (the first at start):
            plan_relay (core/submissions.py) ─▶ did its deploy start? ─▶ yes: mark_submitted
                                                                      └─▶ no: submit again / supersede

Submission is keyed by the deployment id (domain/temporal.submit_deploy), so submitting a deployment
Temporal already has deploys nothing twice. A deployment is FAILED at `submit` only when Temporal
answered no; one whose fate Temporal did not tell stays QUEUED until it does.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core.contracts import DeploymentStatus, DeployRequest
from core.db import Database
from core.models import Deployment, utcnow
from core.settings import Settings
from core.submissions import RelayPlan, Unsubmitted, plan_relay
from domain.crash_points import crash_point
from domain.errors import Unavailable
from domain.temporal import (
    DeployRefused,
    DeployUnconfirmed,
    TemporalConnection,
    deploy_workflow_started,
    submit_deploy,
    within,
)

logger = logging.getLogger("dockyard.submissions")

RELAY_INTERVAL_SECONDS = 5.0
# The longest a route (or the relay) waits on Temporal for one deployment; past it, the relay finds
# out what happened.
SUBMIT_TIMEOUT_SECONDS = 10.0
# Longer than a route may spend submitting: an older unsubmitted deployment is no route's business
# any more, so superseding it cannot race its own submission.
RELAY_AFTER = timedelta(seconds=15)
UNCONFIRMED = "not yet confirmed by Temporal"
QUEUED = DeploymentStatus.QUEUED.value


@dataclass
class PendingDeployment:
    deployment: Deployment
    request: DeployRequest


async def submit(
    session: AsyncSession, settings: Settings, temporal: TemporalConnection, pending: PendingDeployment
) -> None:
    """Hand a committed deployment to its service's workflow and record that Temporal has it.

    Temporal refuses it, or cannot be reached before anything is sent: it ends FAILED at `submit`
    with the reason (raised as a DomainError). Temporal does not say (a timeout, a connection lost
    mid-call): it stays QUEUED, noted unconfirmed, and the relay (domain/submissions.py) asks Temporal
    and submits it again if need be. It is never FAILED while Temporal may be running it."""
    deployment_id = pending.deployment.id
    try:
        client = await temporal.get()
    except Unavailable as exc:
        await mark_refused(session, deployment_id, exc.detail)
        raise
    crash_point("before-submit")
    try:
        await within(SUBMIT_TIMEOUT_SECONDS, submit_deploy(client, settings, pending.request))
    except DeployRefused as exc:
        await mark_refused(session, deployment_id, exc.reason)
        raise exc.error from None
    except DeployUnconfirmed as exc:
        await mark_unconfirmed(session, deployment_id, str(exc))
        return
    crash_point("after-submit")
    await mark_submitted(session, deployment_id)


async def mark_submitted(session: AsyncSession, deployment_id: str) -> None:
    """Temporal has the deployment: it leaves the outbox (its request stays: what its replicas run)."""
    await session.execute(
        update(Deployment)
        .where(Deployment.id == deployment_id, Deployment.submitted_at.is_(None))
        .values(submitted_at=utcnow())
    )
    await session.execute(
        update(Deployment)
        .where(
            Deployment.id == deployment_id,
            Deployment.status == QUEUED,
            Deployment.message.startswith(UNCONFIRMED),
        )
        .values(message=None)
    )
    await session.commit()


async def mark_unconfirmed(session: AsyncSession, deployment_id: str, reason: str) -> None:
    """Temporal did not say whether it has the deployment: it stays QUEUED, saying so, for the relay."""
    await session.execute(
        update(Deployment)
        .where(Deployment.id == deployment_id, Deployment.submitted_at.is_(None), Deployment.status == QUEUED)
        .values(message=f"{UNCONFIRMED} ({reason}); Dockyard asks it again until it answers")
    )
    await session.commit()


async def mark_refused(session: AsyncSession, deployment_id: str, reason: str) -> None:
    """Temporal answered no: nothing of the deployment runs, it ends FAILED at `submit`."""
    await session.execute(
        update(Deployment)
        .where(Deployment.id == deployment_id, Deployment.status == QUEUED)
        .values(
            status=DeploymentStatus.FAILED.value,
            failed_step="submit",
            message=reason,
            finished_at=utcnow(),
            submitted_at=utcnow(),  # out of the outbox
        )
    )
    await session.commit()


async def relay_once(
    db: Database, settings: Settings, temporal: TemporalConnection, now: datetime | None = None
) -> dict[str, str]:
    """One pass over the outbox. Answers what it did, per deployment: `submitted`, `confirmed`
    (Temporal had it: its deploy started, or its status moved on), `superseded`, `refused`,
    `unconfirmed` (asked again next pass)."""
    rows, newest = await _outbox(db)
    plan = plan_relay(
        [Unsubmitted(r.id, r.service_id, r.environment_id, r.created_at, r.status == QUEUED) for r in rows],
        newest,
        now or utcnow(),
        RELAY_AFTER,
    )
    done: dict[str, str] = {}
    for deployment_id in plan.confirm:  # its workflows moved it on: Temporal has it
        async with db.session() as session:
            await mark_submitted(session, deployment_id)
        done[deployment_id] = "confirmed"
    if not (plan.submit or plan.supersede):
        return done
    client = await temporal.get()
    by_id = {row.id: row for row in rows}
    for deployment_id in [*plan.submit, *plan.supersede]:
        row = by_id[deployment_id]
        try:
            done[deployment_id] = await _relay(db, settings, client, row, plan)
        except DeployUnconfirmed as exc:
            done[deployment_id] = "unconfirmed"
            logger.warning("deployment %s: %s; asking again in %gs", row.id, exc, RELAY_INTERVAL_SECONDS)
        else:
            logger.warning("deployment %s left unsubmitted by the API: %s", row.id, done[deployment_id])
    return done


async def relay_forever(db: Database, settings: Settings, temporal: TemporalConnection) -> None:
    """The API's background task: a pass at start, then every RELAY_INTERVAL_SECONDS."""
    while True:
        try:
            await relay_once(db, settings, temporal)
        except Unavailable as exc:  # Temporal unreachable: the outbox waits for it
            logger.warning("submission relay: %s", exc.detail)
        except Exception:
            logger.exception("submission relay failed; retrying in %gs", RELAY_INTERVAL_SECONDS)
        await asyncio.sleep(RELAY_INTERVAL_SECONDS)


async def _outbox(db: Database) -> tuple[list[Deployment], dict[tuple[str, str], str]]:
    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(Deployment).where(
                    Deployment.submitted_at.is_(None), Deployment.deploy_request.is_not(None)
                )
            )
        )
        newest = {}
        for pair in {(row.service_id, row.environment_id) for row in rows}:
            latest = await session.scalar(
                select(Deployment.id)
                .where(Deployment.service_id == pair[0], Deployment.environment_id == pair[1])
                .order_by(Deployment.created_at.desc(), Deployment.id.desc())
                .limit(1)
            )
            if latest is not None:
                newest[pair] = latest
    return rows, newest


async def _relay(db: Database, settings: Settings, client: Client, row: Deployment, plan: RelayPlan) -> str:
    async with db.session() as session:
        if await deploy_workflow_started(client, row.workflow_id):
            await mark_submitted(session, row.id)
            return "confirmed"
        if row.id in plan.supersede:
            await _supersede(session, row.id, plan.supersede[row.id])
            return "superseded"
        request = DeployRequest.model_validate(row.deploy_request)
        try:
            await within(SUBMIT_TIMEOUT_SECONDS, submit_deploy(client, settings, request))
        except DeployRefused as exc:
            await mark_refused(session, row.id, exc.reason)
            return "refused"
        await mark_submitted(session, row.id)
        return "submitted"


async def _supersede(session: AsyncSession, deployment_id: str, newer: str) -> None:
    await session.execute(
        update(Deployment)
        .where(Deployment.id == deployment_id, Deployment.status == QUEUED, Deployment.submitted_at.is_(None))
        .values(
            status=DeploymentStatus.SUPERSEDED.value,
            message=f"superseded by {newer}, a newer deployment, before it reached Temporal",
            finished_at=utcnow(),
            submitted_at=utcnow(),  # out of the outbox
        )
    )
    await session.commit()
