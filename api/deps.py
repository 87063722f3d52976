"""Dependencies of the API routes, as `Annotated` aliases."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from core.db import Database
from core.limits import control_character
from core.settings import Settings
from domain.releases import TemporalConnection

_bearer = HTTPBearer(auto_error=False, description="API token (DOCKYARD_API_TOKEN)")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    async with db.session() as session:
        yield session


def get_temporal(request: Request) -> TemporalConnection:
    # Not connected here: a route connects after it has recorded what it was asked to do, so a
    # Temporal outage leaves a FAILED deployment behind (and never masks a 401 or a 404).
    return request.app.state.temporal  # type: ignore[no-any-return]


def current_actor(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    given = credentials.credentials if credentials else ""
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401, "missing or invalid API token (Authorization: Bearer ...)", {"WWW-Authenticate": "Bearer"}
        )
    return "admin"


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
CurrentActor = Annotated[str, Depends(current_actor)]
