"""Accounts (admins), invitations, and personal API tokens (the operations: domain/users.py,
domain/tokens.py)."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import AdminActor, CurrentActor, RedisDep, SessionDep, SettingsDep
from api.schemas.common import ErrorBody
from api.schemas.people import (
    InvitationAccept,
    InvitationCreate,
    InvitationCreated,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserCreate,
    UserRead,
    UserUpdate,
)
from domain import sessions, tokens, users
from domain.actors import ProjectRole

router = APIRouter(prefix="/v1/users", tags=["users"])
invitations_router = APIRouter(prefix="/v1/invitations", tags=["users"])
tokens_router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


@router.get("", operation_id="list_users")
async def list_users(actor: CurrentActor, session: SessionDep) -> list[UserRead]:
    return [UserRead.model_validate(user) for user in await users.list_users(session, actor)]


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_user")
async def create_user(body: UserCreate, actor: CurrentActor, session: SessionDep) -> UserRead:
    """An account with the password given (tell the person; or invite them instead)."""
    user = await users.create_user(
        session, actor, email=body.email, name=body.name, role=body.role, password=body.password
    )
    return UserRead.model_validate(user)


@router.get("/{user_id}", operation_id="get_user")
async def get_user(user_id: str, actor: AdminActor, session: SessionDep) -> UserRead:
    return UserRead.model_validate(await users.get_user(session, user_id))


@router.patch("/{user_id}", operation_id="update_user")
async def update_user(
    user_id: str, body: UserUpdate, actor: CurrentActor, session: SessionDep, redis: RedisDep
) -> UserRead:
    """Rename, change the platform role, or disable (its sessions end at once and its tokens stop
    working) or enable an account."""
    user = await users.update_user(
        session, actor, user_id, name=body.name, role=body.role, disabled=body.disabled
    )
    if body.disabled:
        await sessions.revoke_all_sessions(redis, user.id)
    return UserRead.model_validate(user)


@router.delete(
    "/{user_id}/sessions", status_code=status.HTTP_204_NO_CONTENT, operation_id="end_user_sessions"
)
async def end_user_sessions(user_id: str, actor: AdminActor, session: SessionDep, redis: RedisDep) -> None:
    """End every session of the account (its tokens keep working: revoke them, or disable the account)."""
    await users.get_user(session, user_id)
    await sessions.revoke_all_sessions(redis, user_id)


@invitations_router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_invitation")
async def create_invitation(
    body: InvitationCreate, actor: CurrentActor, session: SessionDep, settings: SettingsDep
) -> InvitationCreated:
    """A single-use link, valid for DOCKYARD_INVITATION_TTL_SECONDS (7 days by default), with which its
    holder creates their account (POST /v1/invitations/accept)."""
    token, invitation = await users.invite(
        session,
        actor,
        email=body.email,
        role=body.role,
        ttl_seconds=settings.invitation_ttl_seconds,
        project_id=body.project_id,
        project_role=body.project_role,
    )
    return InvitationCreated(
        id=invitation.id,
        email=invitation.email,
        role=body.role,
        project_id=invitation.project_id,
        project_role=ProjectRole(invitation.project_role) if invitation.project_role else None,
        expires_at=invitation.expires_at,
        token=token,
        url=f"{settings.public_api_url}/v1/invitations/accept#{token}",
    )


@invitations_router.post(
    "/accept",
    status_code=status.HTTP_201_CREATED,
    operation_id="accept_invitation",
    responses={401: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def accept_invitation(body: InvitationAccept, session: SessionDep) -> UserRead:
    """Create your account with an invitation's token (no other credential: the token is one), then
    log in with the password chosen here."""
    user = await users.accept_invitation(session, body.token, name=body.name, password=body.password)
    return UserRead.model_validate(user)


@tokens_router.get("", operation_id="list_tokens")
async def list_tokens(actor: CurrentActor, session: SessionDep) -> list[TokenRead]:
    """Your personal API tokens (never their secrets)."""
    return [TokenRead.model_validate(token) for token in await tokens.personal_tokens(session, actor)]


@tokens_router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_token")
async def create_token(body: TokenCreate, actor: CurrentActor, session: SessionDep) -> TokenCreated:
    """A personal API token: it acts as you. Answered this once."""
    secret, token = await tokens.create_personal_token(
        session, actor, name=body.name, expires_in_days=body.expires_in_days
    )
    return TokenCreated.model_validate({**TokenRead.model_validate(token).model_dump(), "token": secret})


@tokens_router.delete("/{token_id}", operation_id="revoke_token")
async def revoke_token(token_id: str, actor: CurrentActor, session: SessionDep) -> TokenRead:
    """The token stops working now."""
    return TokenRead.model_validate(await tokens.revoke_token(session, actor, token_id))
