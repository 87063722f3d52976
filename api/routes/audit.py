"""The audit log (domain/audit.py): for admins, and for a project's owners (their project's)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from api.deps import CurrentActor, SessionDep
from api.schemas.people import AuditEventRead
from domain.audit import audit_events

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", operation_id="list_audit_events")
async def list_audit_events(
    actor: CurrentActor,
    session: SessionDep,
    project_id: str | None = None,
    by: str | None = Query(default=None, description='who: "admin", "user:usr_…", "deploy-token:tok_…"'),
    target: str | None = Query(default=None, description="the object's id"),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[AuditEventRead]:
    """Changes, newest first: who, what, which object, in which project, from where, and the result
    (`refused` for a write the caller was not allowed to make)."""
    events = await audit_events(
        session, actor, project_id=project_id, by=by, target=target, since=since, until=until, limit=limit
    )
    return [AuditEventRead.model_validate(event) for event in events]
