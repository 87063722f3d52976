"""The node agent's FastAPI app: `create_app(settings)`; `agent.main.run` serves it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from agent.auth import AuthenticationFailed, Authenticator, BearerTokenAuthenticator
from agent.enrollment import NodeIdentity
from agent.errors import AgentFailure
from agent.heartbeats import HeartbeatSender
from agent.logs import DockerLogs, LogArchive, ServiceLogs
from agent.metrics import Metrics
from agent.replicas import Replicas
from agent.routes import router
from agent.runtime import DockerRuntime, Runtime
from agent.settings import AgentSettings
from core.contracts import AgentError


@dataclass(frozen=True)
class Heartbeats:
    """Where an enrolled agent sends its heartbeats, and how often (agent/heartbeats.py)."""

    identity: NodeIdentity
    gateway_url: str
    interval_seconds: float
    on_renewed: Callable[[], None] = lambda: None  # the agent's server presents the new certificate


def create_app(
    settings: AgentSettings,
    runtime: Runtime | None = None,
    authenticator: Authenticator | None = None,
    heartbeats: Heartbeats | None = None,
    metrics_authenticator: Authenticator | None = None,
) -> FastAPI:
    """The agent's API. A runtime passed in stays the caller's to close; one made here closes on shutdown.
    Without an authenticator, /v1 takes the bearer token of `settings.token`, and /metrics that one or
    `settings.metrics_token`. With `heartbeats`, the agent sends them for as long as it serves."""
    owned = runtime is None
    docker_runtime: Runtime = runtime if runtime is not None else DockerRuntime(settings.docker_host)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sending = None
        if heartbeats is not None:
            sender = HeartbeatSender(
                heartbeats.identity,
                heartbeats.gateway_url,
                heartbeats.interval_seconds,
                app.state.replicas,
                settings,
                heartbeats.on_renewed,
            )
            sending = asyncio.create_task(sender.run())
        try:
            yield
        finally:
            if sending is not None:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            app.state.metrics.close()
            await docker_logs.close()
            if owned:
                docker_runtime.close()

    app = FastAPI(title="Dockyard node agent", version="1", lifespan=lifespan)
    app.state.settings = settings
    docker_logs = DockerLogs(settings.docker_host)
    archive = LogArchive(
        settings.kept_logs_dir(),
        timedelta(hours=settings.logs_retention_hours),
        settings.logs_max_bytes_per_service,
    )
    app.state.logs = ServiceLogs(docker_runtime, docker_logs, archive, settings.node_name)
    app.state.replicas = Replicas(settings, docker_runtime, app.state.logs)
    app.state.authenticator = authenticator or BearerTokenAuthenticator(settings.token)
    app.state.metrics = Metrics(docker_runtime, settings.node_name)
    app.state.metrics_authenticator = metrics_authenticator or (
        authenticator
        if authenticator is not None
        else BearerTokenAuthenticator(settings.token, settings.metrics_token)
    )
    app.include_router(router)
    _add_error_handlers(app)

    @app.get("/metrics", operation_id="metrics", tags=["agent"], response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus' exposition of this node's replicas and of the node (agent/metrics.py)."""
        request.app.state.metrics_authenticator.authenticate(request)
        return Response(await app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", operation_id="healthz", tags=["agent"])
    async def healthz() -> dict[str, str]:
        """Liveness of the agent process itself; needs no token and does not touch Docker."""
        return {"status": "ok", "node": settings.node_name}

    return app


def _error(status_code: int, error: AgentError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.model_dump(mode="json"), status_code=status_code, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AgentFailure)
    async def agent_failure(request: Request, exc: AgentFailure) -> JSONResponse:
        return _error(exc.status_code, exc.error)

    @app.exception_handler(AuthenticationFailed)
    async def authentication_failed(request: Request, exc: AuthenticationFailed) -> JSONResponse:
        error = AgentError(step="authenticate", reason=exc.reason)
        headers = {"WWW-Authenticate": exc.challenge} if exc.challenge else None
        return _error(exc.status_code, error, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        replica_id = request.path_params.get("replica_id")
        return _error(422, AgentError(step="validate", reason=problems, replica_id=replica_id))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        error = AgentError(step="request", reason=str(exc.detail))
        return _error(exc.status_code, error, headers=getattr(exc, "headers", None))
