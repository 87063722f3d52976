"""The `dockyard api` process: the FastAPI control plane."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn import server as uvicorn_server

from api.deps import printable_parameters
from api.errors import install_error_handlers
from api.gateway import create_gateway_app
from api.routes import (
    audit,
    auth,
    autoscaling,
    build_logs,
    codec,
    deployments,
    logs,
    members,
    metrics,
    nodes,
    pools,
    projects,
    services,
    sources,
    traefik,
    users,
    variables,
    webhooks,
)
from api.schemas.common import ErrorItem
from core import mtls, pki
from core.db import Database, migrate_async
from core.settings import Settings
from domain.context import begin
from domain.submissions import relay_forever
from domain.temporal import TemporalConnection
from domain.users import ensure_first_admin


def create_app(settings: Settings, *, run_migrations: bool = True) -> FastAPI:
    settings.require("api_token")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            await migrate_async(settings.database_url)
        app.state.db = Database(settings.database_url)
        # An installation without accounts gets its first admin (password in <state>/admin-password).
        async with app.state.db.session() as session:
            await ensure_first_admin(session, settings.state_dir)
        # Deployments recorded but not (known to be) in Temporal: submitted again, at start and
        # every few seconds (domain/submissions.py).
        relay = asyncio.create_task(relay_forever(app.state.db, settings, app.state.temporal))
        try:
            yield
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
            await app.state.db.dispose()
            await app.state.redis.aclose()

    app = FastAPI(
        title="Dockyard",
        version="0.1.0",
        description=(
            "Self-hosted PaaS control plane. Authenticate with `Authorization: Bearer <API token>` (a "
            "personal token, a project's deploy token, or the installation's bootstrap token), or with the "
            "session cookie of POST /v1/auth/login (writes repeat its CSRF token in X-CSRF-Token)."
        ),
        lifespan=lifespan,
        dependencies=[Depends(printable_parameters)],
    )
    app.state.settings = settings
    app.state.temporal = TemporalConnection(settings)
    app.state.redis = Redis.from_url(settings.redis_url)  # sessions, login rate limits, build logs
    install_error_handlers(app)
    document_errors(app)
    app.add_middleware(RequestNotesMiddleware)
    allow_temporal_ui(app, settings)
    for router in (
        projects.router,
        services.project_router,
        services.router,
        variables.router,
        deployments.service_router,
        deployments.router,
        build_logs.router,
        sources.router,
        traefik.router,
        webhooks.router,
        webhooks.project_router,
        nodes.router,
        pools.router,
        auth.router,
        users.router,
        users.invitations_router,
        users.tokens_router,
        members.router,
        audit.router,
        codec.router,
        metrics.router,
        metrics.internal_router,
        autoscaling.router,
        logs.router,
    ):
        app.include_router(router)

    @app.get("/healthz", tags=["health"], operation_id="health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def document_errors(app: FastAPI) -> None:
    """FastAPI documents its 422 answers as {"detail": [...]}; Dockyard answers every error as ErrorBody
    ({"detail": "...", "errors": [{"field", "reason"}]}, api/errors.py): the document says so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorItem"] = ErrorItem.model_json_schema()
            schemas["HTTPValidationError"] = {
                "title": "ErrorBody",
                "type": "object",
                "properties": {
                    "detail": {"type": "string", "title": "Detail"},
                    "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ErrorItem"}},
                },
                "required": ["detail"],
            }
            schemas.pop("ValidationError", None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allow_temporal_ui(app: FastAPI, settings: Settings) -> None:
    """The Temporal Web UI calls the payload codec from the browser, with the session cookie."""
    parts = urlsplit(settings.temporal_ui_url)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[f"{parts.scheme}://{parts.netloc}"],
        allow_credentials=True,
        allow_methods=["POST"],
        allow_headers=["Content-Type", "Authorization", "X-Namespace"],
    )


def create_codec_app(settings: Settings) -> FastAPI:
    """`dockyard codec-server`: the payload codec alone (its callers authenticated as by the API)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.database_url)
        try:
            yield
        finally:
            await app.state.db.dispose()
            await app.state.redis.aclose()

    app = FastAPI(title="Dockyard payload codec", lifespan=lifespan)
    app.state.settings = settings
    app.state.redis = Redis.from_url(settings.redis_url)
    install_error_handlers(app)
    app.add_middleware(RequestNotesMiddleware)
    allow_temporal_ui(app, settings)
    app.include_router(codec.router)
    return app


class RequestNotesMiddleware:
    """Each request's audit notes begin with its address (domain/context.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            begin(client[0] if client else None)
        await self.app(scope, receive, send)


def run(settings: Settings) -> None:
    """Serve the REST API and, beside it, the agent gateway (mutual TLS) until interrupted."""
    asyncio.run(serve(settings))


async def serve(settings: Settings) -> None:
    import uvicorn

    api = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning"
        )
    )
    # The control plane's certificate is the gateway's: agents require dockyard://control-plane.
    await asyncio.to_thread(pki.ensure_authority, settings.pki_dir)
    files = pki.ControlPlaneFiles(settings.pki_dir)
    gateway = _Companion(
        uvicorn.Config(
            create_gateway_app(settings),
            host=settings.agent_gateway_host,
            port=settings.agent_gateway_port,
            log_level="warning",
            **mtls.server_options(files.certificate, files.key, files.ca_certificate),
        )
    )
    companion = asyncio.create_task(gateway.serve())
    try:
        await api.serve()  # returns on SIGINT/SIGTERM (the API server handles the signals)
    finally:
        gateway.should_exit = True
        await companion


class _Companion(uvicorn_server.Server):
    """A server beside the main one: the main one takes the signals and tells it to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
