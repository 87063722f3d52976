"""The `dockyard api` process: the FastAPI control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.releases import TemporalConnection
from api.routes import (
    build_logs,
    deployments,
    nodes,
    projects,
    services,
    sources,
    traefik,
    variables,
    webhooks,
)
from core.db import Database, migrate_async
from core.settings import Settings


def create_app(settings: Settings, *, run_migrations: bool = True) -> FastAPI:
    settings.require("api_token")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            await migrate_async(settings.database_url)
        app.state.db = Database(settings.database_url)
        try:
            yield
        finally:
            await app.state.db.dispose()

    app = FastAPI(
        title="Dockyard",
        version="0.1.0",
        description="Self-hosted PaaS control plane. Authenticate with `Authorization: Bearer <API token>`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.temporal = TemporalConnection(settings)
    install_error_handlers(app)
    for module in (projects, services, variables, deployments, build_logs, sources, traefik, webhooks, nodes):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"], operation_id="health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def run(settings: Settings) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")
