"""A property-based fuzz of the API: schemathesis generates requests from the OpenAPI document for every
operation and sends them to the running API (`dockyard api`, on PostgreSQL, with Redis and a Temporal dev
server); no answer may be a server error, and every answer must match the schema the document gives for
its status. A fixed seed keeps a run reproducible; DOCKYARD_FUZZ_EXAMPLES sets how many requests per
operation (CI's default keeps it to a couple of minutes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.secrets import SecretBox
from tests.support.components import REPO_ROOT, TemporalDevServer, missing_component, wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.redis_server import RedisServer
from tests.support.registry import free_port

pytestmark = pytest.mark.timeout(900)

TOKEN = "fuzz-bootstrap-token"
EXAMPLES = int(os.environ.get("DOCKYARD_FUZZ_EXAMPLES", "12"))


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def prometheus() -> Iterator[PrometheusServer]:
    """A Prometheus with nothing to scrape: the metrics routes answer empty series, not 503."""
    with PrometheusServer() as running:
        yield running


def test_no_request_the_schema_allows_gets_a_server_error_or_an_answer_off_the_schema(
    postgres_url: str,
    redis_server: RedisServer,
    temporal_server: TemporalDevServer,
    prometheus: PrometheusServer,
    tmp_path: Path,
) -> None:
    schemathesis = shutil.which("st", path=str(Path(sys.executable).parent))
    if schemathesis is None:
        missing_component("schemathesis is not installed (scripts/install.sh --dev)")
    port, gateway = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DOCKYARD_STATE_DIR": str(tmp_path / "state"),
        "DOCKYARD_DATABASE_URL": postgres_url,
        "DOCKYARD_REDIS_URL": redis_server.url,
        "DOCKYARD_TEMPORAL_ADDRESS": temporal_server.address,
        "DOCKYARD_PROMETHEUS_URL": prometheus.url,
        "DOCKYARD_TEMPORAL_TASK_QUEUE": f"fuzz-{uuid.uuid4().hex[:8]}",  # no worker: deploys stay queued
        "DOCKYARD_API_PORT": str(port),
        "DOCKYARD_AGENT_GATEWAY_PORT": str(gateway),
        "DOCKYARD_PUBLIC_API_URL": url,
        "DOCKYARD_API_TOKEN": TOKEN,
        "DOCKYARD_SECRET_KEY": SecretBox.generate_key(),
    }
    log = (tmp_path / "api.log").open("wb")
    api = subprocess.Popen(
        [sys.executable, "-m", "cli", "api"], env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: _healthy(url), 60, "dockyard api")
        run = subprocess.run(
            [
                schemathesis,
                "run",
                f"{url}/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                "20261207",
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--no-color",
                # A gzipped tarball body: schemathesis cannot make one (the upload has tests of its own).
                "--exclude-operation-id",
                "upload_deployment",
            ],
            capture_output=True,
            text=True,
            timeout=800,
            cwd=tmp_path,
        )
        print(run.stdout[-20000:])
        assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    finally:
        api.terminate()
        api.wait(30)
        log.close()
