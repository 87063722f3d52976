"""Session-wide real components. Each starts on first use and stops at the end of the run."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
from redis.asyncio import Redis
from temporalio.client import Client

from core.db import Database, migrate_async
from core.settings import load_settings
from core.temporal import connect
from tests.support.components import (
    TESTS_CACHE_ENV,
    DockerEngine,
    PostgresServer,
    TemporalDevServer,
    unavailable,
)
from tests.support.images import forget_session_images
from tests.support.redis_server import RedisServer
from tests.support.registry import Registry

pytest_plugins = ["tests.support.platform", "tests.support.fleet"]


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dockyard-tests-") as path:
        # The platforms of one run share the cache their build base images come from (one
        # debootstrap per run); CI points the benchmarks and the tests at one (TESTS_CACHE_ENV).
        os.environ.setdefault(TESTS_CACHE_ENV, str(Path(path) / "cache"))
        yield Path(path)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    engine = DockerEngine()
    client = engine.ensure()
    yield client
    forget_session_images(client)
    client.close()
    engine.stop()


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    if reason := Registry.available():
        unavailable(reason)
    with Registry() as running:
        yield running


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def temporal_server(workdir: Path) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def temporal_client(temporal_server: TemporalDevServer) -> Client:
    return await connect(
        load_settings(temporal_address=temporal_server.address, state_dir=temporal_server.workdir)
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    server = PostgresServer()
    url = server.ensure()
    yield url
    server.drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every repository test runs against both backends."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'dockyard.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    await migrate_async(database_url)
    db = Database(database_url)
    yield db
    await _truncate(db)
    await db.dispose()


async def _truncate(db: Database) -> None:
    from core.models import Base

    async with db.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())
