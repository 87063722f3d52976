"""The REST API in process (ASGI, inside its lifespan), for integration tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from api.main import create_app
from core.db import Database
from core.secrets import SecretBox
from core.settings import Settings, load_settings

TOKEN = "api-test-token"
EDGE = "http://127.0.0.1:18080"
BASE_URL = "http://dockyard.test"


SECRET_KEY = SecretBox.generate_key()


def api_settings(database: Database, tmp_path: Path, temporal_address: str) -> Settings:
    return load_settings(
        api_token=TOKEN,
        database_url=database.url,
        state_dir=tmp_path,
        temporal_address=temporal_address,
        # Our own task queue: a worker another test runs on this server never picks these deploys up.
        temporal_task_queue=f"api-tests-{uuid.uuid4().hex[:8]}",
        apps_domain="apps.test",
        secret_key=SECRET_KEY,
        edge_http_url=EDGE,
    )


@asynccontextmanager
async def api_transport(settings: Settings) -> AsyncIterator[httpx.ASGITransport]:
    """The API app inside its lifespan, as a transport clients of its own can share."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


def client_of(transport: httpx.ASGITransport, **headers: str) -> httpx.AsyncClient:
    """A client with its own cookies: no credential unless given in `headers`."""
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers)


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        api_transport(settings) as transport,
        client_of(transport, Authorization=f"Bearer {TOKEN}") as client,
    ):
        yield client
