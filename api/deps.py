"""Dependencies of the API routes, as `Annotated` aliases."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from api.releases import TemporalConnection
from core.db import Database
from core.settings import Settings

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


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[TemporalConnection, Depends(get_temporal)]
CurrentActor = Annotated[str, Depends(current_actor)]
