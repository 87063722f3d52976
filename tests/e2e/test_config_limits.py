"""Config files in the code are held to the API's limits, end to end (`dockyard up`, a real worker and
Temporal): a railway.toml asking for 2000 replicas, a drainingSeconds the replicas cannot have or an
overlapSeconds no timer can hold ends the deploy FAILED at build, at once, naming file, key and limit;
no replica is started."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e.test_builds import create_code_service, upload
from tests.e2e.test_git_deploys import create_site
from tests.support.git_server import GitServer
from tests.support.platform import Platform

pytestmark = pytest.mark.timeout(600)

FAILS_WITHIN_SECONDS = 60  # no retries: the first attempt of the build step refuses the file


@pytest.fixture(scope="module")
def git_server() -> Iterator[GitServer]:
    with GitServer() as server:
        yield server


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        pytest.param(
            "railway.toml",
            "[deploy]\nnumReplicas = 2000\n",
            "railway.toml: deploy.numReplicas: 2000 is above the limit of 100 (replicas of a service)",
            id="railway-num-replicas",
        ),
        pytest.param(
            "dockyard.toml",
            "[deploy]\ndraining_seconds = 4000\n",
            "dockyard.toml: deploy.drainingSeconds: 4000 is above the limit of 3600 "
            "(seconds between SIGTERM and SIGKILL)",
            id="dockyard-draining-seconds",
        ),
        pytest.param(
            "railway.json",
            '{"deploy": {"overlapSeconds": 1000000000000}}',
            "railway.json: deploy.overlapSeconds: 1000000000000 is above the limit of 3600 "
            "(seconds old replicas serve beside new ones)",
            id="railway-overlap-seconds",
        ),
    ],
)
def test_a_config_file_above_a_limit_fails_the_build_naming_file_key_and_limit(
    platform: Platform, docker_client: docker.DockerClient, tmp_path: Path, file: str, text: str, message: str
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.html").write_text("<h1>limits</h1>\n")
    (app / file).write_text(text)
    service = create_code_service(platform, f"limits-{file.replace('.', '-')}", "web")

    started = time.monotonic()
    deployment = platform.wait_final(upload(platform, service["id"], app)["id"], FAILS_WITHIN_SECONDS)
    seconds = time.monotonic() - started

    assert deployment["status"] == "FAILED", deployment
    assert deployment["failed_step"] == "build"
    assert message in deployment["message"], deployment["message"]
    assert seconds < FAILS_WITHIN_SECONDS
    print(f"{file}: FAILED at build in {seconds:.1f} s: {deployment['message']}")
    replicas = docker_client.containers.list(all=True, filters={"label": f"dockyard.service={service['id']}"})
    assert replicas == []


def test_a_repository_asking_for_2000_replicas_fails_at_build_and_starts_nothing(
    platform: Platform, git_server: GitServer, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    site = create_site(platform, git_server, tmp_path, "limits-repo")
    sha = site.push(
        "too many replicas", "Ask for 2000 replicas", **{"railway.toml": "[deploy]\nnumReplicas = 2000\n"}
    )

    started = time.monotonic()
    response = platform.api.post(f"/v1/services/{site.service['id']}/deployments", json={"ref": sha})
    assert response.status_code == 202, response.text
    deployment = platform.wait_final(response.json()["id"], FAILS_WITHIN_SECONDS)
    seconds = time.monotonic() - started

    assert (deployment["status"], deployment["failed_step"]) == ("FAILED", "build"), deployment
    assert deployment["source"]["ref"] == sha
    expected = "railway.toml: deploy.numReplicas: 2000 is above the limit of 100 (replicas of a service)"
    assert expected in deployment["message"], deployment["message"]
    print(f"repository: FAILED at build in {seconds:.1f} s: {deployment['message']}")
    service_id = site.service["id"]
    assert docker_client.containers.list(all=True, filters={"label": f"dockyard.service={service_id}"}) == []
