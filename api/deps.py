"""Dependencies of the API routes, as `Annotated` aliases."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.limits import control_character
from core.settings import Settings
from domain.actors import SERVICE_ROUTES, Actor, ActorKind
from domain.authentication import NO_CREDENTIAL, actor_for_session, actor_for_token
from domain.authorization import require_admin
from domain.context import note_actor
from domain.errors import Forbidden, Unauthenticated
from domain.temporal import TemporalConnection

SESSION_COOKIE = "dockyard_session"
CSRF_COOKIE = "dockyard_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Writes that change nothing and come from a page that cannot send the CSRF token (the Temporal UI's
# calls to the payload codec; CORS lets only the UI's origin read the answers).
CSRF_EXEMPT = frozenset({"/v1/codec/encode", "/v1/codec/decode"})
# What a person whose password must change may still do (see their account, change it, log out).
PASSWORD_CHANGE_PATHS = frozenset({"/v1/auth/me", "/v1/auth/password", "/v1/auth/logout"})

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token: a personal token (dyp_…), a project's deploy token (dyd_…) or the "
    "installation's bootstrap token (DOCKYARD_API_TOKEN)",
)
_session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description=f"A session, from POST /v1/auth/login; writes also send the {CSRF_HEADER} header",
)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    async with db.session() as session:
        yield session


def get_redis(request: Request) -> Redis:
    return request.app.state.redis  # type: ignore[no-any-return]


def get_temporal(request: Request) -> TemporalConnection:
    # Not connected here: a route connects after it has recorded what it was asked to do, so a
    # Temporal outage leaves a FAILED deployment behind (and never masks a 401 or a 404).
    return request.app.state.temporal  # type: ignore[no-any-return]


async def current_actor(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    session: Annotated[AsyncSession, Depends(get_session)],
    redis: Annotated[Redis, Depends(get_redis)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_session_cookie)],
) -> Actor:
    """Who the request is from: its bearer token, else its session cookie (whose writes must repeat
    the session's CSRF token in the X-CSRF-Token header)."""
    if credentials is not None:
        actor = await actor_for_token(session, settings, credentials.credentials)
    elif cookie:
        actor, info = await actor_for_session(session, redis, settings, cookie)
        if request.method not in SAFE_METHODS and request.url.path not in CSRF_EXEMPT:
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode(), info.csrf.encode()):
                raise Forbidden(
                    f"a write with a session cookie must send the session's CSRF token in {CSRF_HEADER} "
                    f"(from the login's answer, or the {CSRF_COOKIE} cookie)"
                )
    else:
        raise Unauthenticated(NO_CREDENTIAL)
    note_actor(actor)
    if actor.kind is ActorKind.SERVICE:
        route = request.scope.get("route")
        allowed = SERVICE_ROUTES.get(actor.label.removeprefix("service:"), frozenset())
        if (request.method, getattr(route, "path", "")) not in allowed:
            raise Forbidden(f"{actor.label} may call only its own routes")
    if actor.password_change_required and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise Forbidden("change your password first (POST /v1/auth/password): it was chosen for you")
    return actor


def printable_parameters(request: Request) -> None:
    """Refuse a control character in any path or query parameter or header value, before a route
    reads it (a NUL reaching PostgreSQL is a 500, reaching git or exec an endless retry): a 422 in
    FastAPI's shape, `loc` naming the parameter. Depended on by every route (api.main)."""
    errors = [
        _control_character_error(kind, name, value)
        for kind, items in (
            ("path", ((name, str(value)) for name, value in request.path_params.items())),
            ("query", request.query_params.multi_items()),
            # HTTP lets a header value hold tabs; a server may pass anything else through.
            ("header", ((name, value.replace("\t", " ")) for name, value in request.headers.items())),
        )
        for name, value in items
        if control_character(name) or control_character(value)
    ]
    if errors:
        raise RequestValidationError(errors)


def _control_character_error(kind: str, name: str, value: str) -> dict[str, object]:
    problem = control_character(value) or f"the name {control_character(name)}"
    return {"type": "control_character", "loc": (kind, name), "msg": problem, "input": value}


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[TemporalConnection, Depends(get_temporal)]


def current_admin(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    """Platform operations (nodes, pools, people): an admin's only."""
    require_admin(actor)
    return actor


RedisDep = Annotated[Redis, Depends(get_redis)]
CurrentActor = Annotated[Actor, Depends(current_actor)]
AdminActor = Annotated[Actor, Depends(current_admin)]
