"""The API killed between recording a deployment and Temporal knowing of it: the deploy still completes,
exactly once. The real platform (`dockyard up`: its supervisor restarts the API), the real API process
dying at a submission point (DOCKYARD_TEST_CRASH_FILE, domain/crash_points.py: os._exit, like SIGKILL),
the relay of the restarted API (domain/submissions.py) finishing the job.

- `before-submit`: the deployment (or the webhook delivery with its deployment) is committed; Temporal
  was never called.
- `after-submit`: Temporal has the deployment; the API never recorded that it does.

Exactly once: one deployment of the service, ACTIVE; one release of it in Temporal (one DeployWorkflow
with its DeploymentId); as many replicas as asked, serving through Traefik.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from core.settings import load_settings
from core.temporal import connect
from core.webhooks import Provider
from tests.e2e.test_git_deploys import BUILD_SECONDS, create_site, deployments, served
from tests.support.git_server import GitServer
from tests.support.platform import CRASH_FILE_NAME, AppImages, Platform
from tests.support.webhooks import push_delivery

pytestmark = pytest.mark.timeout(600)

RESTART_SECONDS = 60  # the supervisor's backoff starts at 0.5 s; the API migrates and serves in a few


@pytest.fixture(scope="module")
def git_server() -> Any:
    with GitServer() as server:
        yield server


def arm(platform: Platform, point: str) -> Path:
    crash_file = platform.state_dir / CRASH_FILE_NAME
    crash_file.write_text(point)
    return crash_file


def api_pid(platform: Platform) -> int:
    return int((platform.state_dir / "run" / "api.pid").read_text())


def wait_restarted(platform: Platform, crash_file: Path, before: int) -> float:
    """Until the API that died (it consumed the crash file) was restarted and answers; answers when."""
    assert not crash_file.exists(), "the API never reached the crash point"
    deadline = time.monotonic() + RESTART_SECONDS
    while time.monotonic() < deadline:
        try:
            if api_pid(platform) != before and platform.api.get("/healthz").status_code == 200:
                return time.monotonic()
        except (httpx.HTTPError, ValueError, FileNotFoundError):
            pass
        time.sleep(0.2)
    pytest.fail(f"the API was not restarted within {RESTART_SECONDS}s")


def releases_in_temporal(platform: Platform, deployment_id: str) -> int:
    """DeployWorkflow executions Temporal ever ran for the deployment (open or closed)."""

    async def count() -> int:
        client = await connect(load_settings(temporal_address=platform.env["DOCKYARD_TEMPORAL_ADDRESS"]))
        query = f'DeploymentId = "{deployment_id}"'
        found: list[str] = []
        for _ in range(50):  # visibility is eventually consistent
            found = [w.id async for w in client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.1)
        return len(found)

    return asyncio.run(count())


def wait_submitted(platform: Platform, deployment_id: str, timeout: float = 60) -> None:
    """Until the deployment has left the outbox: the API recorded that Temporal has it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(platform.state_dir / "dockyard.db") as db:
            row = db.execute(
                "SELECT submitted_at, deploy_request FROM deployments WHERE id = ?", (deployment_id,)
            ).fetchone()
        if row[0] is not None:
            assert row[1] is not None, "a submitted deployment keeps its request: what its replicas run"
            return
        time.sleep(0.5)
    pytest.fail(f"{deployment_id} still unsubmitted after {timeout:g}s")


def running_replicas(client: docker.DockerClient, deployment_id: str) -> int:
    return len(client.containers.list(filters={"label": f"dockyard.deployment={deployment_id}"}))


@pytest.mark.parametrize("point", ["before-submit", "after-submit"])
def test_an_api_killed_at_a_deploy_restarts_and_the_deploy_completes_exactly_once(
    platform: Platform, app_images: AppImages, docker_client: docker.DockerClient, point: str
) -> None:
    image = app_images.push("e2e/crash", "v1", f"crashed {point}")
    service = platform.create_service(
        f"e2e-crash-{point}", "web", image, replicas=2, health_check_path="/healthz"
    )
    crash_file = arm(platform, point)
    before = api_pid(platform)

    with pytest.raises(httpx.HTTPError):  # the process is gone before it answers
        platform.api.post(f"/v1/services/{service['id']}/deployments", json={})
    crashed = time.monotonic()
    restarted = wait_restarted(platform, crash_file, before)
    [recorded] = platform.api.get(f"/v1/services/{service['id']}/deployments").json()
    deployment = platform.wait_final(recorded["id"], timeout=180)
    done = time.monotonic()

    assert deployment["status"] == "ACTIVE", (deployment["failed_step"], deployment["message"])
    assert [d["id"] for d in platform.api.get(f"/v1/services/{service['id']}/deployments").json()] == [
        deployment["id"]
    ]
    assert releases_in_temporal(platform, deployment["id"]) == 1
    assert running_replicas(docker_client, deployment["id"]) == 2
    assert platform.get(service).text.strip() == f"crashed {point}"
    wait_submitted(platform, deployment["id"])
    print(
        f"\n{point}: API back {restarted - crashed:.1f}s after the crash; "
        f"deployment ACTIVE {done - crashed:.1f}s after the crash"
    )


def test_a_webhook_delivery_whose_api_was_killed_before_its_deploy_is_submitted_still_deploys_once(
    platform: Platform, git_server: GitServer, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    site = create_site(platform, git_server, tmp_path, "crash-hook")
    sha = site.push("pushed before a crash", "Survive a crash")
    delivery = push_delivery(
        Provider.GITHUB, site.webhook["secret"], repo_url=site.repo_url, branch="main", sha=sha, message="x"
    )
    url = site.webhook["urls"][Provider.GITHUB.value]
    crash_file = arm(platform, "before-submit")
    before = api_pid(platform)

    with pytest.raises(httpx.HTTPError):
        httpx.post(url, content=delivery.body, headers=delivery.headers, timeout=30)
    wait_restarted(platform, crash_file, before)
    # The provider delivers again (it got no answer): the delivery was recorded with its deployment,
    # which the restarted API hands to Temporal; the redelivery is that same delivery, not a new deploy.
    again = httpx.post(url, content=delivery.body, headers=delivery.headers, timeout=30)
    assert again.status_code == 200, again.text
    [deployment_id] = again.json()["deployment_ids"]
    assert again.json()["verdict"] == "duplicate"
    deployment = platform.wait_final(deployment_id, BUILD_SECONDS)

    assert deployment["status"] == "ACTIVE", (deployment["failed_step"], deployment["message"])
    assert deployment["commit_sha"] == sha
    assert [d["id"] for d in deployments(platform, site.service)] == [deployment_id]
    assert releases_in_temporal(platform, deployment_id) == 1
    assert running_replicas(docker_client, deployment_id) == 1
    assert "pushed before a crash" in served(platform, site.service)
    wait_submitted(platform, deployment_id)
