"""Traefik's HTTP provider polls this endpoint for its dynamic configuration."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import CurrentActor, SessionDep
from core.models import Route
from core.naming import route_name
from core.routing import RouteView, render_traefik_config
from domain.authorization import require_internal

router = APIRouter(prefix="/internal", tags=["internal"])


@router.get("/traefik/config", operation_id="traefik_config")
async def traefik_config(session: SessionDep, actor: CurrentActor) -> dict[str, Any]:
    require_internal(actor, "traefik")
    routes = await session.scalars(select(Route))
    return render_traefik_config(
        RouteView(
            name=route_name(r.service_id, r.environment_id),
            hostname=r.hostname,
            servers=tuple(r.servers),
            fallback=tuple(r.fallback_servers),
        )
        for r in routes
    )
