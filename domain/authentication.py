"""The credential of a request → its Actor, or Unauthenticated saying why.

Bearer credentials: the bootstrap token (DOCKYARD_API_TOKEN), a personal token (dyp_…) or a deploy token
(dyd_…). Cookies: a session (dys_…, domain/sessions.py). A disabled person's tokens and sessions stop
working at once.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import ApiToken, User, utcnow
from core.settings import Settings
from domain.actors import (
    BOOTSTRAP,
    DEPLOY_TOKEN_PREFIX,
    PERSONAL_TOKEN_PREFIX,
    Actor,
    ActorKind,
    PlatformRole,
    secret_hash,
    service_identity,
)
from domain.errors import Unauthenticated
from domain.sessions import SessionInfo, session_of

NO_CREDENTIAL = "missing or invalid API token (Authorization: Bearer ...), or log in (POST /v1/auth/login)"
# A token's last use is written at most this often.
LAST_USED_GRANULARITY = timedelta(minutes=1)


async def actor_for_token(session: AsyncSession, settings: Settings, token: str) -> Actor:
    bootstrap = settings.api_token.get_secret_value() if settings.api_token else ""
    if bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
        return BOOTSTRAP
    identities = (
        ("traefik", settings.traefik_token),
        ("builder", settings.builder_token),
        ("prometheus", settings.prometheus_token),
    )
    for name, secret in identities:
        if secret is not None and hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
            return service_identity(name)
    if not token.startswith((PERSONAL_TOKEN_PREFIX, DEPLOY_TOKEN_PREFIX)):
        raise Unauthenticated(NO_CREDENTIAL)
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == secret_hash(token)))
    now = utcnow()
    if row is None:
        raise Unauthenticated("unknown API token")
    if row.revoked_at is not None:
        raise Unauthenticated(f"this API token ({row.name}) was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated(
            f"this API token ({row.name}) expired at {row.expires_at.isoformat(timespec='seconds')}"
        )
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_GRANULARITY:
        row.last_used_at = now
        await session.commit()
    if row.kind == "deploy":
        return Actor(ActorKind.DEPLOY, f"deploy-token:{row.id}", token_id=row.id, project_id=row.project_id)
    user = await _enabled_user(session, row.user_id)
    return _person(user, label=f"user:{user.id} via token {row.id}", token_id=row.id)


async def actor_for_session(
    session: AsyncSession, redis: Redis, settings: Settings, secret: str
) -> tuple[Actor, SessionInfo]:
    info = await session_of(redis, settings, secret)
    user = await _enabled_user(session, info.user_id)
    return _person(user, label=f"user:{user.id}", session_id=info.id), info


async def _enabled_user(session: AsyncSession, user_id: str | None) -> User:
    user = await session.get(User, user_id) if user_id else None
    if user is None or user.disabled_at is not None:
        raise Unauthenticated("this account is disabled")
    return user


def _person(user: User, *, label: str, token_id: str | None = None, session_id: str | None = None) -> Actor:
    return Actor(
        ActorKind.USER,
        label,
        role=PlatformRole(user.role),
        user_id=user.id,
        token_id=token_id,
        session_id=session_id,
        password_change_required=user.password_change_required,
    )
