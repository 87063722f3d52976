"""API tokens: personal ones (a person's, acting as them: what `dockyard login` stores) and the credential
check of every request (domain/authentication.py).

A token is shown once, stored as its SHA-256, named, optionally expiring, revocable; its last use is kept
(to the minute: a request does not write to the database each time).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import ApiToken, new_id, utcnow
from domain.actors import PERSONAL_TOKEN_PREFIX, Actor, ActorKind, new_secret, secret_hash
from domain.audit import audit
from domain.errors import Forbidden, NotFound

TOKEN_PREFIX_SHOWN = 8  # "dyp_" and four characters: enough to tell tokens apart, useless to guess


def new_token(
    kind: str,
    prefix: str,
    actor: Actor,
    *,
    name: str,
    expires_in_days: int | None,
    user_id: str | None = None,
    project_id: str | None = None,
) -> tuple[str, ApiToken]:
    """A token (the secret, answered once) and its row (stored hashed), not yet added to a session."""
    secret = new_secret(prefix)
    now = utcnow()
    token = ApiToken(
        id=new_id("tok"),
        kind=kind,
        name=name,
        token_hash=secret_hash(secret),
        prefix=secret[:TOKEN_PREFIX_SHOWN],
        user_id=user_id,
        project_id=project_id,
        created_by=str(actor),
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    return secret, token


def _require_person(actor: Actor) -> str:
    if actor.kind is not ActorKind.USER or actor.user_id is None:
        raise Forbidden("personal tokens belong to people: log in as one (the bootstrap token has none)")
    return actor.user_id


async def create_personal_token(
    session: AsyncSession, actor: Actor, *, name: str, expires_in_days: int | None
) -> tuple[str, ApiToken]:
    """A token that acts as the person asking; the secret is answered this once. Committed."""
    user_id = _require_person(actor)
    secret, token = new_token(
        "personal", PERSONAL_TOKEN_PREFIX, actor, name=name, expires_in_days=expires_in_days, user_id=user_id
    )
    session.add(token)
    audit(session, str(actor), "token.create", token.id, name=name, expires_at=_at(token))
    await session.commit()
    return secret, token


async def personal_tokens(session: AsyncSession, actor: Actor) -> list[ApiToken]:
    """The person's tokens, revoked ones included (newest first)."""
    user_id = _require_person(actor)
    query = select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind == "personal")
    return list(await session.scalars(query.order_by(ApiToken.created_at.desc(), ApiToken.id)))


async def revoke_token(session: AsyncSession, actor: Actor, token_id: str) -> ApiToken:
    """The token stops working now. A person revokes their own; an admin anyone's. Revoking a revoked
    token changes nothing."""
    token = await session.get(ApiToken, token_id)
    if token is None or (not actor.is_admin and (token.user_id is None or token.user_id != actor.user_id)):
        raise NotFound("token", token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit(session, str(actor), "token.revoke", token.id, name=token.name)
        await session.commit()
    return token


def _at(token: ApiToken) -> str | None:
    return token.expires_at.isoformat(timespec="seconds") if token.expires_at else None
