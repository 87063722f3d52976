"""infra/images/build-base-images.sh against the test registry: a Debian bookworm image made from Debian's
packages (no public container registry), pushed, runnable, and a working base for builds that apt-get install.

The first run on a machine debootstraps (about 25 s); later runs reuse the cached rootfs and local image."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from redis.asyncio import Redis
from temporalio.testing import ActivityEnvironment

from activities.builds import BuildActivities
from activities.registry import RegistryActivities
from core.build import BuildRequest, BuiltImage
from core.build_logs import read_build_log
from core.settings import Settings, load_settings
from tests.support import missing_component
from tests.support.components import REPO_ROOT
from tests.support.redis_server import RedisServer
from tests.support.registry import PushedImage, Registry, login

pytestmark = pytest.mark.timeout(600)

SCRIPT = REPO_ROOT / "infra" / "images" / "build-base-images.sh"
LOCAL_IMAGE = "dockyard/debian:bookworm"


def run_script(registry: Registry, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *flags, registry.host, registry.username, "-"],
        input=registry.password,
        capture_output=True,
        text=True,
        timeout=540,
    )


@pytest.fixture(scope="session")
def debian_base_image(docker_client: docker.DockerClient, registry: Registry) -> Iterator[PushedImage]:
    """`<registry>/dockyard/debian:bookworm`, built by the script and pushed to the session's registry."""
    if shutil.which("debootstrap") is None:
        missing_component("debootstrap is not installed (apt-get install debootstrap)")
    result = run_script(registry)
    if result.returncode != 0:
        pytest.fail(f"build-base-images.sh failed:\n{result.stderr}", pytrace=False)
    pinned = result.stdout.strip().splitlines()[-1]
    repository, digest = pinned.split("@")
    yield PushedImage(repository=repository, tag="bookworm", digest=digest)
    docker_client.images.remove(f"{repository}:bookworm")  # the registry-specific tag; dockyard/debian stays


@pytest.fixture
def settings(registry: Registry, redis_server: RedisServer) -> Settings:
    return load_settings(
        registry_host=registry.host,
        registry_username=registry.username,
        registry_password=registry.password,
        redis_url=redis_server.url,
        build_network="host",
    )


async def test_the_script_pushes_the_image_and_prints_its_digest(
    debian_base_image: PushedImage, settings: Settings
) -> None:
    resolved = await ActivityEnvironment().run(
        RegistryActivities(settings).resolve_image, debian_base_image.tagged
    )

    assert resolved.pinned == debian_base_image.ref


def test_the_image_is_debian_12_with_a_usable_environment(
    debian_base_image: PushedImage, registry: Registry, docker_client: docker.DockerClient
) -> None:
    login(docker_client, registry)
    output = docker_client.containers.run(
        debian_base_image.ref, ["cat", "/etc/debian_version"], network_mode="host", remove=True
    )

    assert output.decode().startswith("12.")
    config = docker_client.images.get(debian_base_image.ref).attrs["Config"]
    assert {"LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"} <= set(config["Env"])
    assert config["Cmd"] == ["bash"]


async def test_apt_get_installs_packages_inside_a_build_on_it(
    debian_base_image: PushedImage,
    settings: Settings,
    registry: Registry,
    tmp_path: Path,
    redis: Redis,
    docker_client: docker.DockerClient,
) -> None:
    deployment_id = f"dep-{uuid.uuid4().hex[:12]}"
    request = BuildRequest(
        deployment_id=deployment_id,
        context_dir=str(tmp_path),
        # FROM our own registry, behind its htpasswd auth: the build logs in first.
        dockerfile=(
            f"FROM {debian_base_image.tagged}\n"
            # The deployment id keeps BuildKit from answering the step from its cache of an earlier run.
            f"RUN echo {deployment_id} && apt-get update"
            " && apt-get install -y --no-install-recommends python3"
            " && python3 -c 'print(\"python\", 3 * 14)'\n"
        ),
        image_repository=f"{registry.host}/base-images/python-check",
        tag=deployment_id,
    )
    activities = BuildActivities(settings)

    try:
        built: BuiltImage = await ActivityEnvironment().run(activities.build_image, request)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(request.image)

    assert any(line.endswith(" python 42") for line in await read_build_log(redis, deployment_id))
    assert built.pinned.startswith(f"{registry.host}/base-images/python-check@sha256:")


def test_a_second_run_reuses_the_local_image_and_pushes_the_same_digest(
    debian_base_image: PushedImage, registry: Registry
) -> None:
    started = time.monotonic()
    result = run_script(registry)

    assert result.returncode == 0, result.stderr
    assert f"{LOCAL_IMAGE} exists locally; reusing it" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == debian_base_image.ref
    assert time.monotonic() - started < 20
