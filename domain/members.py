"""A project's people and its deploy tokens: managed by its owners (and admins).

A project always keeps an owner: the last one can be neither removed nor demoted. A deploy token
(dyd_…) deploys and reads its project only; it is shown once, stored hashed, revocable.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import ApiToken, Membership, User, utcnow
from domain.actors import DEPLOY_TOKEN_PREFIX, Actor, ProjectRole
from domain.audit import audit
from domain.authorization import Permission, authorize
from domain.errors import Conflict, NotFound
from domain.tokens import new_token


async def members(session: AsyncSession, actor: Actor, project_id: str) -> list[tuple[Membership, User]]:
    await authorize(session, actor, Permission.READ, project_id)
    rows = await session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project_id)
        .order_by(Membership.created_at, User.email)
    )
    return [(membership, user) for membership, user in rows]


async def set_member(
    session: AsyncSession, actor: Actor, project_id: str, user_id: str, role: ProjectRole
) -> Membership:
    """Add the person to the project with `role`, or change their role there; committed."""
    await authorize(session, actor, Permission.MANAGE, project_id)
    if await session.get(User, user_id) is None:
        raise NotFound("user", user_id)
    membership = await session.get(Membership, (project_id, user_id))
    if membership is None:
        membership = Membership(project_id=project_id, user_id=user_id, role=role.value, created_at=utcnow())
        session.add(membership)
    elif membership.role != role.value:
        await _keep_an_owner(session, membership)
        membership.role = role.value
    audit(session, actor, "member.set", project_id, user_id=user_id, role=role.value)
    await session.commit()
    return membership


async def remove_member(session: AsyncSession, actor: Actor, project_id: str, user_id: str) -> None:
    await authorize(session, actor, Permission.MANAGE, project_id)
    membership = await session.get(Membership, (project_id, user_id))
    if membership is None:
        raise NotFound("member", user_id)
    await _keep_an_owner(session, membership)
    await session.delete(membership)
    audit(session, actor, "member.remove", project_id, user_id=user_id)
    await session.commit()


async def _keep_an_owner(session: AsyncSession, membership: Membership) -> None:
    """Refuse to take away the project's last owner."""
    if membership.role != ProjectRole.OWNER.value:
        return
    owners = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.project_id == membership.project_id, Membership.role == ProjectRole.OWNER.value)
    )
    if (owners or 0) <= 1:
        raise Conflict(f"{membership.user_id} is the project's last owner: make another member owner first")


async def create_deploy_token(
    session: AsyncSession, actor: Actor, project_id: str, *, name: str, expires_in_days: int | None
) -> tuple[str, ApiToken]:
    """A token for CI that deploys and reads this project only; the secret is answered this once."""
    await authorize(session, actor, Permission.MANAGE, project_id)
    secret, token = new_token(
        "deploy",
        DEPLOY_TOKEN_PREFIX,
        actor,
        name=name,
        expires_in_days=expires_in_days,
        project_id=project_id,
    )
    session.add(token)
    audit(session, actor, "deploy_token.create", token.id, project_id=project_id, name=name)
    await session.commit()
    return secret, token


async def deploy_tokens(session: AsyncSession, actor: Actor, project_id: str) -> list[ApiToken]:
    await authorize(session, actor, Permission.MANAGE, project_id)
    query = select(ApiToken).where(ApiToken.project_id == project_id, ApiToken.kind == "deploy")
    return list(await session.scalars(query.order_by(ApiToken.created_at.desc(), ApiToken.id)))


async def revoke_deploy_token(
    session: AsyncSession, actor: Actor, project_id: str, token_id: str
) -> ApiToken:
    await authorize(session, actor, Permission.MANAGE, project_id)
    token = await session.get(ApiToken, token_id)
    if token is None or token.project_id != project_id or token.kind != "deploy":
        raise NotFound("deploy token", token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit(session, actor, "deploy_token.revoke", token.id, project_id=project_id)
        await session.commit()
    return token
