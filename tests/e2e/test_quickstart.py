"""The README's first command: `dockyard up --example` in the foreground, then Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import docker
import httpx
import pytest

from tests.support.components import REPO_ROOT, TESTS_CACHE_ENV, wait_until
from tests.support.platform import DOCKYARD, assert_nothing_left_running, platform_env, process_env

pytestmark = pytest.mark.timeout(300)


def test_up_deploys_the_example_prints_urls_and_ctrl_c_stops_everything(
    docker_client: docker.DockerClient, workdir: Path
) -> None:
    state_dir = workdir / "quickstart"
    # The Debian rootfs of the build base image is the run's other platforms' (tests/support/platform.py);
    # whichever starts first makes it, through the same `dockyard up` code path.
    env = platform_env(state_dir) | {"DOCKYARD_CACHE_DIR": os.environ[TESTS_CACHE_ENV]}
    output = state_dir / "up.out"
    state_dir.mkdir(parents=True)
    service_ids: list[str] = []
    with output.open("w") as out:
        up = subprocess.Popen(
            [*DOCKYARD, "up", "--example"],
            env=process_env(env),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "Press Ctrl-C" in output.read_text() or up.poll() is not None, 240, "dockyard up")
        printed = output.read_text()
        assert up.poll() is None, printed

        example_url = re.search(r"Example service:\s+(\S+)", printed)
        assert example_url, printed
        assert f"{env['DOCKYARD_TEMPORAL_UI_URL']}" in printed
        assert f"http://127.0.0.1:{env['DOCKYARD_API_PORT']}/docs" in printed

        # The example answers through Traefik at its printed URL (the hostname resolves to loopback).
        host = example_url.group(1).split("://", 1)[1].split(":")[0]
        response = httpx.get(f"{env['DOCKYARD_EDGE_HTTP_URL']}/", headers={"Host": host})
        assert response.status_code == 200 and "Hello from Dockyard" in response.text
        assert httpx.get(f"http://127.0.0.1:{env['DOCKYARD_API_PORT']}/docs").status_code == 200
        assert httpx.get(env["DOCKYARD_TEMPORAL_UI_URL"]).status_code == 200
        service_ids.extend(example_service_ids(state_dir, env))
        assert docker_client.containers.list(filters={"label": f"dockyard.service={service_ids[0]}"})
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert up.wait(120) == 0, output.read_text()

    assert_nothing_left_running(state_dir, docker_client, service_ids)


def example_service_ids(state_dir: Path, env: dict[str, str]) -> list[str]:
    secrets = dict(line.split("=", 1) for line in (state_dir / "secrets.env").read_text().splitlines())
    with httpx.Client(
        base_url=f"http://127.0.0.1:{env['DOCKYARD_API_PORT']}",
        headers={"Authorization": f"Bearer {secrets['DOCKYARD_API_TOKEN']}"},
    ) as api:
        projects = {p["name"]: p["id"] for p in api.get("/v1/projects").json()}
        services = api.get(f"/v1/projects/{projects['example']}/services").json()
    return [s["id"] for s in services if s["name"] == "hello"]
