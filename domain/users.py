"""People: accounts made by an admin or through an invitation link (single use, expiring), passwords,
and the first admin of an installation.

Emails are kept lower-case and are unique. A disabled account cannot log in, and its sessions and tokens
stop working (domain/sessions.py, domain/tokens.py check `disabled_at` on every use).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Invitation, Membership, Project, User, new_id, utcnow
from domain.actors import (
    INVITATION_PREFIX,
    Actor,
    PlatformRole,
    ProjectRole,
    control_plane,
    new_secret,
    secret_hash,
)
from domain.audit import audit
from domain.authorization import require_admin
from domain.errors import Conflict, Invalid, NotFound, Unauthenticated
from domain.passwords import check_new_password, generated_password, hash_password, verify_password

FIRST_ADMIN_EMAIL = "admin@localhost"
FIRST_ADMIN_PASSWORD_FILE = "admin-password"


def normalized_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    session: AsyncSession,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: PlatformRole,
    password: str,
) -> User:
    """An account with the password given (an admin creating it for someone); committed."""
    require_admin(actor)
    check_new_password(password)
    user = User(
        id=new_id("usr"),
        email=normalized_email(email),
        name=name,
        role=role.value,
        password_hash=hash_password(password),
        created_at=utcnow(),
    )
    await _add(session, user)
    audit(session, str(actor), "user.create", user.id, email=user.email, role=user.role)
    await session.commit()
    return user


async def _add(session: AsyncSession, user: User) -> None:
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"email: an account with {user.email} exists already") from None


async def invite(
    session: AsyncSession,
    actor: Actor,
    *,
    email: str,
    role: PlatformRole,
    ttl_seconds: int,
    project_id: str | None = None,
    project_role: ProjectRole | None = None,
) -> tuple[str, Invitation]:
    """A single-use link for `email` (the token, answered once, and its row); committed. With a project,
    the new account joins it with `project_role`."""
    require_admin(actor)
    email = normalized_email(email)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"email: an account with {email} exists already")
    if project_id is not None and await session.get(Project, project_id) is None:
        raise NotFound("project", project_id)
    token = new_secret(INVITATION_PREFIX)
    now = utcnow()
    invitation = Invitation(
        id=new_id("inv"),
        token_hash=secret_hash(token),
        email=email,
        role=role.value,
        project_id=project_id,
        project_role=(project_role or ProjectRole.DEVELOPER).value if project_id else None,
        created_by=str(actor),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(invitation)
    audit(
        session,
        str(actor),
        "invitation.create",
        invitation.id,
        email=email,
        role=role.value,
        project_id=project_id,
    )
    await session.commit()
    return token, invitation


async def accept_invitation(session: AsyncSession, token: str, *, name: str, password: str) -> User:
    """The account the invitation was for, with the password chosen now; the invitation is used up
    (claimed with a conditional UPDATE, so of two acceptances exactly one wins)."""
    check_new_password(password)
    now = utcnow()
    user_id = new_id("usr")
    claimed = await session.execute(
        update(Invitation)
        .where(
            Invitation.token_hash == secret_hash(token),
            Invitation.used_at.is_(None),
            Invitation.expires_at > now,
        )
        .values(used_at=now, used_by_user_id=user_id)
        .returning(
            Invitation.id, Invitation.email, Invitation.role, Invitation.project_id, Invitation.project_role
        )
    )
    claim = claimed.one_or_none()
    if claim is None:
        await session.rollback()
        raise await _invitation_refused(session, token)
    invitation_id, email, role, project_id, project_role = claim
    user = User(
        id=user_id, email=email, name=name, role=role, password_hash=hash_password(password), created_at=now
    )
    await _add(session, user)
    if project_id is not None and project_role is not None:
        session.add(Membership(project_id=project_id, user_id=user.id, role=project_role, created_at=now))
    audit(
        session,
        f"invitation:{invitation_id}",
        "user.create",
        user.id,
        email=email,
        role=role,
        project_id=project_id,
    )
    await session.commit()
    return user


async def _invitation_refused(session: AsyncSession, token: str) -> Unauthenticated:
    row = await session.scalar(select(Invitation).where(Invitation.token_hash == secret_hash(token)))
    if row is None:
        return Unauthenticated("unknown invitation: ask an admin for a new link")
    if row.used_at is not None:
        return Unauthenticated("this invitation was used already: log in, or ask an admin for a new link")
    return Unauthenticated(f"this invitation expired at {row.expires_at.isoformat(timespec='seconds')}")


async def get_user(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user", user_id)
    return user


async def list_users(session: AsyncSession, actor: Actor) -> list[User]:
    require_admin(actor)
    return list(await session.scalars(select(User).order_by(User.created_at, User.id)))


async def update_user(
    session: AsyncSession,
    actor: Actor,
    user_id: str,
    *,
    name: str | None = None,
    role: PlatformRole | None = None,
    disabled: bool | None = None,
) -> User:
    """An admin changes a person's name, platform role, or disables (or enables) the account. The last
    enabled admin can be neither demoted nor disabled."""
    require_admin(actor)
    user = await get_user(session, user_id)
    if (role is PlatformRole.MEMBER or disabled) and user.role == PlatformRole.ADMIN.value:
        admins = await session.scalar(
            select(func.count()).select_from(User).where(User.role == "admin", User.disabled_at.is_(None))
        )
        if (admins or 0) <= 1 and user.disabled_at is None:
            raise Conflict(f"{user.email} is the last admin: make another admin first")
    changes: dict[str, object] = {}
    if name is not None:
        user.name = changes["name"] = name
    if role is not None:
        user.role = changes["role"] = role.value
    if disabled is not None:
        user.disabled_at = utcnow() if disabled else None
        changes["disabled"] = disabled
    audit(session, str(actor), "user.update", user.id, **changes)
    await session.commit()
    return user


async def change_password(session: AsyncSession, user: User, current: str, new: str) -> None:
    """The person's own change: the current password proves it is them."""
    if not verify_password(user.password_hash, current):
        raise Invalid("current_password", "this is not your current password")
    check_new_password(new, "new_password")
    if current == new:
        raise Invalid("new_password", "choose a password other than the current one")
    user.password_hash = hash_password(new)
    user.password_change_required = False
    audit(session, f"user:{user.id}", "user.password", user.id)
    await session.commit()


async def ensure_first_admin(session: AsyncSession, state_dir: Path) -> Path | None:
    """An installation with no account gets its first admin, `admin@localhost`, with a generated password
    written to `state_dir/admin-password` (mode 0600), to be changed at the first login. Answers the
    file when it made the account now."""
    if await session.scalar(select(func.count()).select_from(User)):
        return None
    password = generated_password()
    user = User(
        id=new_id("usr"),
        email=FIRST_ADMIN_EMAIL,
        name="Admin",
        role=PlatformRole.ADMIN.value,
        password_hash=hash_password(password),
        password_change_required=True,
        created_at=utcnow(),
    )
    session.add(user)
    audit(session, control_plane("first-admin"), "user.create", user.id, email=user.email, role=user.role)
    try:
        await session.commit()
    except IntegrityError:  # another API process, starting at the same time, made it
        await session.rollback()
        return None
    path = state_dir / FIRST_ADMIN_PASSWORD_FILE
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(f"{password}\n")
    return path
