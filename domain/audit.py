"""The audit log: every change, with who (a person, a token, a service identity, the control plane),
what, which object, in which project, from where, and the result (`ok`, or `refused` for a write the
caller was not allowed to make).

A request's address, caller and project are noted as the request goes (domain/context.py), so the
operations that record changes need not pass them on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.models import AuditEvent
from domain.actors import Actor
from domain.authorization import Permission, authorize, require_admin
from domain.context import notes


def audit(session: AsyncSession, actor: Actor | str, action: str, target: str, **detail: Any) -> None:
    """Record a change (added to the session: committed with the change itself). `detail` never holds
    a secret."""
    session.add(_event(str(actor), action, target, "ok", detail))


def _event(actor: str, action: str, target: str, result: str, detail: dict[str, Any]) -> AuditEvent:
    noted = notes()
    project_id = detail.get("project_id") or noted.project_id
    return AuditEvent(
        actor=actor,
        action=action,
        target=target,
        detail=detail,
        project_id=project_id if isinstance(project_id, str) else None,
        address=noted.address,
        result=result,
    )


async def record_refusal(db: Database, method: str, path: str, status: int, reason: str) -> None:
    """A write refused for want of a permission, in a transaction of its own (the request's own was
    rolled back or never began)."""
    noted = notes()
    detail = {"method": method, "status": status, "reason": reason[:500]}
    async with db.transaction() as session:
        session.add(_event(noted.actor or "anonymous", "request.refused", path[:255], "refused", detail))


async def audit_events(
    session: AsyncSession,
    actor: Actor,
    *,
    project_id: str | None = None,
    by: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """The events that match, newest first. Admins read everything; a project's owners read their
    project's (`project_id` is then required)."""
    if project_id is None:
        require_admin(actor, "read the whole audit log (give project_id to read a project's)")
    else:
        await authorize(session, actor, Permission.MANAGE, project_id)
    query = select(AuditEvent)
    if project_id is not None:
        query = query.where(AuditEvent.project_id == project_id)
    if by is not None:
        query = query.where(AuditEvent.actor == by)
    if target is not None:
        query = query.where(AuditEvent.target == target)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(max(1, min(limit, 1000)))
    return list(await session.scalars(query))
