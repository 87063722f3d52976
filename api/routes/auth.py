"""Logging in and out, one's own account and sessions (the operations: domain/sessions.py, domain/users.py).

A login answers a session in an HttpOnly cookie (Secure when the API is reached over HTTPS, SameSite=Lax)
and the CSRF token that cookie-authenticated writes repeat in X-CSRF-Token (also in a readable cookie).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response, status

from api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentActor,
    RedisDep,
    SessionDep,
    SettingsDep,
)
from api.schemas.common import ErrorBody
from api.schemas.people import LoginAnswer, LoginRequest, Me, PasswordChange, SessionRead, UserRead
from core.settings import Settings
from domain import sessions, tokens, users
from domain.errors import Conflict, Forbidden

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/login",
    operation_id="login",
    responses={401: {"model": ErrorBody}, 429: {"model": ErrorBody}},
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> LoginAnswer:
    """Open a session with an email and password. Too many failed logins for an account or from an
    address are refused for a while (429, with Retry-After)."""
    done = await sessions.login(
        session, redis, settings, email=body.email, password=body.password, address=client_address(request)
    )
    secure = _secure(request, settings)
    max_age = int(settings.session_max_seconds)
    response.set_cookie(
        SESSION_COOKIE, done.secret, max_age=max_age, httponly=True, secure=secure, samesite="lax", path="/"
    )
    response.set_cookie(
        CSRF_COOKIE,
        done.session.csrf,
        max_age=max_age,
        httponly=False,
        secure=secure,
        samesite="lax",
        path="/",
    )
    return LoginAnswer(
        user=UserRead.model_validate(done.user),
        session_id=done.session.id,
        csrf_token=done.session.csrf,
        password_change_required=done.user.password_change_required,
    )


def _secure(request: Request, settings: Settings) -> bool:
    return request.url.scheme == "https" or settings.public_api_url.startswith("https://")


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, operation_id="logout")
async def logout(
    request: Request, response: Response, actor: CurrentActor, session: SessionDep, redis: RedisDep
) -> None:
    """End the credential of this request: the session (the cookie is cleared), or the personal token
    (what `dockyard logout` does). The bootstrap and deploy tokens are not logged out: revoke them."""
    if actor.session_id is not None:
        await sessions.end_session(redis, request.cookies.get(SESSION_COOKIE, ""))
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
    elif actor.token_id is not None and actor.user_id is not None:
        await tokens.revoke_token(session, actor, actor.token_id)
    else:
        raise Conflict(f"{actor.label} cannot log out: it is not a session or a personal token")


@router.get("/me", operation_id="whoami")
async def whoami(actor: CurrentActor, session: SessionDep) -> Me:
    user = await users.get_user(session, actor.user_id) if actor.user_id else None
    return Me(
        kind=actor.kind,
        label=actor.label,
        role=actor.role,
        user=UserRead.model_validate(user) if user else None,
        project_id=actor.project_id,
        token_id=actor.token_id,
        session_id=actor.session_id,
    )


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, operation_id="change_password")
async def change_password(body: PasswordChange, actor: CurrentActor, session: SessionDep) -> None:
    """Change your own password (the current one proves it is you)."""
    if actor.user_id is None:
        raise Forbidden(f"{actor.label} has no password: only people do")
    user = await users.get_user(session, actor.user_id)
    await users.change_password(session, user, body.current_password, body.new_password)


@router.get("/sessions", operation_id="list_my_sessions")
async def list_sessions(actor: CurrentActor, redis: RedisDep) -> list[SessionRead]:
    """Your open sessions, newest first."""
    if actor.user_id is None:
        return []
    return [
        SessionRead(
            id=info.id,
            created_at=datetime.fromtimestamp(info.created_at, UTC),
            last_seen_at=datetime.fromtimestamp(info.last_seen_at, UTC),
            address=info.address,
            current=info.id == actor.session_id,
        )
        for info in await sessions.sessions_of(redis, actor.user_id)
    ]


@router.delete(
    "/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT, operation_id="end_my_session"
)
async def end_session(session_id: str, actor: CurrentActor, redis: RedisDep) -> None:
    """End one of your sessions (another browser, a lost laptop)."""
    if actor.user_id is None:
        raise Forbidden(f"{actor.label} has no sessions")
    await sessions.revoke_session(redis, actor.user_id, session_id)
