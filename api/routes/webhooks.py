"""Git providers' webhooks: `POST /v1/webhooks/{provider}/{project_id}`, signed with the project's
webhook secret; the secret and the endpoint URLs to configure; the delivery log.

A delivery is verified before anything else is read; a delivery id is processed once (a
redelivery answers what the first one did); every attempt is logged, without its body.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from api.deps import CurrentActor, SessionDep, SettingsDep, TemporalDep
from api.schemas.webhooks import DeliveryRead, WebhookSettings
from core.models import Project, WebhookDelivery, new_id
from core.secrets import secret_box
from core.webhooks import (
    Ignored,
    PayloadError,
    Ping,
    Provider,
    PullRequest,
    Push,
    SignatureError,
    delivery_id,
    parse_events,
    verify_signature,
)
from domain.audit import audit
from domain.authorization import Permission, project_for
from domain.errors import DomainError
from domain.store import get_or_404
from domain.submissions import submit
from domain.temporal import start_teardown
from domain.webhooks import (
    Outcome,
    apply_pull_request,
    apply_push,
    new_webhook_secret,
    processed_delivery,
    webhook_secret,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
project_router = APIRouter(prefix="/v1/projects/{project_id}", tags=["webhooks"])

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps its payloads at 25 MB
KEEP_REJECTED = 500  # unsigned attempts kept in a project's delivery log
EVENT_HEADERS = {
    Provider.GITHUB: ("X-GitHub-Event",),
    Provider.GITLAB: ("X-Gitlab-Event",),
    Provider.GITEA: ("X-Gitea-Event", "X-Forgejo-Event"),
    Provider.BITBUCKET: ("X-Event-Key",),
}


@router.post("/{provider}/{project_id}", operation_id="receive_webhook")
async def receive_webhook(
    provider: Provider,
    project_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> JSONResponse:
    """A git provider's delivery (configure the URL and secret from `GET /v1/projects/{id}/webhook`,
    content type `application/json`). Pushes to a service's branch deploy that exact commit.

    401: missing or wrong signature (nothing started). 400: a body the provider would not send.
    202: processed (`verdict` accepted or ignored, with the reason). 200: a ping, or a delivery id
    already processed (`verdict` duplicate, with the deployments the first delivery started)."""
    project = await get_or_404(session, Project, project_id)
    body = await _body(request)
    headers = request.headers
    record = WebhookDelivery(
        id=new_id("whd"),
        project_id=project.id,
        provider=provider.value,
        event=_event_name(provider, headers),
        delivery_id=_clip(delivery_id(provider, headers)),
        deployment_ids=[],
    )

    if project.webhook_secret is None:
        reason = f"project {project.id} has no webhook secret yet: GET /v1/projects/{project.id}/webhook"
        await _log(session, record, "rejected", reason)
        raise HTTPException(401, reason)
    try:
        verify_signature(provider, headers, body, webhook_secret(project, secret_box(settings)))
    except SignatureError as exc:
        await _log(session, record, "rejected", exc.reason)
        raise HTTPException(401, exc.reason) from None

    earlier = await processed_delivery(session, project, provider.value, record.delivery_id)
    if earlier is not None:
        return await _duplicate(session, record, earlier)
    try:
        events = parse_events(provider, headers, body)
    except PayloadError as exc:
        await _log(session, record, "invalid", exc.reason)
        raise HTTPException(400, exc.reason) from None

    outcome = Outcome()
    pinged = False
    for event in events:
        if isinstance(event, Ping):
            pinged = True
            outcome.notes.append(f"{event.event}: the endpoint answers")
        elif isinstance(event, Ignored):
            outcome.notes.append(event.reason)
        elif isinstance(event, Push):
            await apply_push(session, settings, project, event, outcome)
        elif isinstance(event, PullRequest):
            await apply_pull_request(session, settings, project, event, outcome)
    verdict = "accepted" if outcome.deployments or outcome.teardowns else "ping" if pinged else "ignored"
    record.dedupe_key = record.delivery_id
    record.deployment_ids = outcome.deployment_ids
    session.add(record)
    _set(record, verdict, outcome.reason())
    audit(session, f"webhook:{provider.value}", "webhook.receive", record.id, verdict=verdict)
    try:
        await session.commit()
    except IntegrityError:  # the same delivery, processed meanwhile by a concurrent request
        await session.rollback()
        earlier = await processed_delivery(session, project, provider.value, record.delivery_id)
        if earlier is None:
            raise
        return await _duplicate(session, _copy(record), earlier)

    failures = []
    for teardown in outcome.teardowns:
        try:
            await start_teardown(temporal, settings, teardown)
        except DomainError as exc:
            failures.append(f"teardown of {teardown.environment_id}: {exc.detail}")
    for pending in outcome.deployments:
        try:
            await submit(session, settings, temporal, pending)
        except DomainError as exc:  # recorded on the deployment (FAILED at submit)
            failures.append(f"{pending.deployment.id}: {exc.detail}")
    answer = DeliveryRead.model_validate(record).model_dump(mode="json")
    if failures:
        answer["errors"] = failures
    return JSONResponse(answer, status_code=200 if verdict == "ping" else 202)


@project_router.get("/webhook", operation_id="get_webhook_settings")
async def get_webhook_settings(
    project_id: str, request: Request, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> WebhookSettings:
    """The secret and URL to configure at the git provider (the secret is created on first call)."""
    project = await project_for(session, actor, Permission.READ_SECRETS, project_id)
    secret = webhook_secret(project, secret_box(settings))
    await session.commit()
    return _settings_of(project, secret, request)


@project_router.post("/webhook/rotate", operation_id="rotate_webhook_secret")
async def rotate_webhook_secret(
    project_id: str, request: Request, session: SessionDep, settings: SettingsDep, actor: CurrentActor
) -> WebhookSettings:
    """A new secret; deliveries signed with the old one are refused from now on."""
    project = await project_for(session, actor, Permission.CONFIGURE, project_id)
    secret = new_webhook_secret()
    project.webhook_secret = secret_box(settings).encrypt(secret)
    audit(session, actor, "project.webhook.rotate", project.id)
    await session.commit()
    return _settings_of(project, secret, request)


@project_router.get("/webhook-deliveries", operation_id="list_webhook_deliveries")
async def list_webhook_deliveries(
    project_id: str, session: SessionDep, actor: CurrentActor, limit: int = 100
) -> list[DeliveryRead]:
    """The project's webhook deliveries, newest first: provider, event, delivery id, verdict and
    reason, and the deployments each started."""
    await project_for(session, actor, Permission.READ, project_id)
    deliveries = await session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.project_id == project_id)
        .order_by(WebhookDelivery.received_at.desc(), WebhookDelivery.id)
        .limit(max(1, min(limit, 1000)))
    )
    return [DeliveryRead.model_validate(d) for d in deliveries]


async def _body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"webhook body over {MAX_BODY_BYTES // (1024 * 1024)} MiB")
    return bytes(body)


def _event_name(provider: Provider, headers: Any) -> str | None:
    for name in EVENT_HEADERS[provider]:
        if value := headers.get(name):
            return _clip(value, 64)
    return None


def _clip(value: str | None, limit: int = 255) -> str | None:
    return None if value is None else value[:limit]


def _set(record: WebhookDelivery, verdict: str, reason: str) -> None:
    record.verdict = verdict
    record.reason = reason


async def _log(session: AsyncSession, record: WebhookDelivery, verdict: str, reason: str) -> None:
    """Log a delivery that was not processed (its id stays free for a correct redelivery)."""
    _set(record, verdict, reason)
    session.add(record)
    if verdict == "rejected":
        await _prune_rejected(session, record.project_id)
    await session.commit()


async def _prune_rejected(session: AsyncSession, project_id: str) -> None:
    """Anyone can post unsigned requests: keep only the newest KEEP_REJECTED of them in the log."""
    newest = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.project_id == project_id, WebhookDelivery.verdict == "rejected")
        .order_by(WebhookDelivery.received_at.desc(), WebhookDelivery.id.desc())
        .limit(KEEP_REJECTED)
    )
    await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.project_id == project_id,
            WebhookDelivery.verdict == "rejected",
            WebhookDelivery.id.not_in(newest.scalar_subquery()),
        )
    )


async def _duplicate(
    session: AsyncSession, record: WebhookDelivery, earlier: WebhookDelivery
) -> JSONResponse:
    record.deployment_ids = list(earlier.deployment_ids)
    await _log(
        session,
        record,
        "duplicate",
        f"delivery {earlier.delivery_id} was processed at {earlier.received_at.isoformat()} "
        f"({earlier.verdict}: {earlier.reason}); nothing done again",
    )
    return JSONResponse(DeliveryRead.model_validate(record).model_dump(mode="json"), status_code=200)


def _copy(record: WebhookDelivery) -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id("whd"),
        project_id=record.project_id,
        provider=record.provider,
        event=record.event,
        delivery_id=record.delivery_id,
        deployment_ids=[],
    )


def _settings_of(project: Project, secret: str, request: Request) -> WebhookSettings:
    base = str(request.base_url).rstrip("/")
    return WebhookSettings(
        project_id=project.id,
        secret=secret,
        urls={p.value: f"{base}/v1/webhooks/{p.value}/{project.id}" for p in Provider},
    )
