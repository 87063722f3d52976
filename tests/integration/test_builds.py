"""build_image against real components: Docker Engine 20.10 with BuildKit, Docker Distribution with htpasswd
auth, and Redis. Builds start FROM the static-busybox base made on this machine, so they need no network.

RUN steps use the host network (engines without a bridge cannot attach them to one). The Debian base image
and apt inside a build: test_base_images.py."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from redis.asyncio import Redis
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.builds import BuildActivities
from activities.registry import RegistryActivities
from cli.baseimage import busybox_rootfs, ensure_busybox_base
from core.build import BuildRequest, BuiltImage, buildkit_memory_cgroup
from core.build_logs import decode_published, follow_build_log, log_channel, log_key, read_build_log
from core.settings import Settings, load_settings
from tests.support import missing_component
from tests.support.redis_server import RedisServer
from tests.support.registry import Registry, login

pytestmark = pytest.mark.timeout(240)

MEBIBYTE = 1024 * 1024


@pytest.fixture(scope="module")
def base(docker_client: docker.DockerClient, registry: Registry) -> Iterator[str]:
    """The busybox base; every image this module builds is untagged at the end."""
    image = ensure_busybox_base(docker_client)
    yield image
    for built in docker_client.images.list(filters={"reference": f"{registry.host}/builds/*"}):
        for tag in built.tags:
            if tag.startswith(f"{registry.host}/builds/"):
                docker_client.images.remove(tag)


@pytest.fixture
def settings(registry: Registry, redis_server: RedisServer) -> Settings:
    return load_settings(
        registry_host=registry.host,
        registry_username=registry.username,
        registry_password=registry.password,
        redis_url=redis_server.url,
        build_network="host",
        build_kill_grace_seconds=5,
    )


@pytest.fixture
def activities(settings: Settings) -> BuildActivities:
    return BuildActivities(settings)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "greeting.txt").write_text("hello from the context\n")
    return tmp_path


def build_request(registry: Registry, context: Path, dockerfile: str | None, **changes: Any) -> BuildRequest:
    deployment_id = f"dep-{uuid.uuid4().hex[:12]}"
    fields: dict[str, Any] = {
        "deployment_id": deployment_id,
        "context_dir": str(context),
        "dockerfile": dockerfile,
        "image_repository": f"{registry.host}/builds/web",
        "tag": deployment_id,
    }
    return BuildRequest(**{**fields, **changes})


async def build(activities: BuildActivities, request: BuildRequest) -> BuiltImage:
    built: BuiltImage = await ActivityEnvironment().run(activities.build_image, request)
    return built


async def build_failure(activities: BuildActivities, request: BuildRequest) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await build(activities, request)
    return caught.value


async def registry_digest(settings: Settings, image: str) -> str | None:
    try:
        resolved = await ActivityEnvironment().run(RegistryActivities(settings).resolve_image, image)
    except ApplicationError as exc:
        assert exc.type == "ImageNotFound", exc
        return None
    return resolved.digest


def processes_with(*words: str) -> list[str]:
    """Command lines of live processes containing every word (read from /proc, so nothing is spawned)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(arg.decode(errors="replace") for arg in argv).strip()
        if text and all(word in text for word in words):
            found.append(text)
    return found


async def until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds:g}s")
        await asyncio.sleep(0.1)


async def until_logged(redis: Redis, deployment_id: str, suffix: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not any(line.endswith(suffix) for line in await read_build_log(redis, deployment_id)):
        assert time.monotonic() < deadline, f"no log line ending with {suffix!r} within {seconds:g}s"
        await asyncio.sleep(0.1)


async def end_status(redis: Redis, deployment_id: str) -> str | None:
    newest: Any = await redis.xrevrange(log_key(deployment_id), count=1)
    return newest[0][1].get("end") if newest else None


# --- success -------------------------------------------------------------------------------------------


async def test_a_build_pushes_the_image_and_returns_the_registry_digest(
    activities: BuildActivities,
    settings: Settings,
    registry: Registry,
    context: Path,
    base: str,
    docker_client: docker.DockerClient,
) -> None:
    dockerfile = f"FROM {base}\nCOPY greeting.txt /greeting.txt\nRUN echo built >> /greeting.txt\n"
    request = build_request(registry, context, dockerfile)

    built = await build(activities, request)

    assert built.digest == await registry_digest(settings, request.image)
    assert built.pinned == f"{registry.host}/builds/web@{built.digest}"
    assert built.log_line_count > 5 and not built.reused
    login(docker_client, registry)
    output = docker_client.containers.run(
        built.pinned, ["cat", "/greeting.txt"], network_mode="host", remove=True
    )
    assert output == b"hello from the context\nbuilt\n"


async def test_a_dockerfile_of_the_repository_and_build_args(
    activities: BuildActivities,
    registry: Registry,
    context: Path,
    base: str,
    docker_client: docker.DockerClient,
) -> None:
    (context / "deploy").mkdir()
    (context / "deploy" / "web.Dockerfile").write_text(
        f'FROM {base}\nARG GREETING\nRUN echo "$GREETING" > /greeting.txt\n'
    )
    request = build_request(
        registry, context, None, dockerfile_path="deploy/web.Dockerfile", build_args={"GREETING": "hej"}
    )

    built = await build(activities, request)

    login(docker_client, registry)
    output = docker_client.containers.run(
        built.pinned, ["cat", "/greeting.txt"], network_mode="host", remove=True
    )
    assert output == b"hej\n"


async def test_log_lines_arrive_live_and_the_backlog_is_readable_after(
    activities: BuildActivities, registry: Registry, context: Path, base: str, redis: Redis
) -> None:
    marker = uuid.uuid4().hex[:8]
    dockerfile = f"FROM {base}\nRUN echo first-{marker}; sleep 2; echo second-{marker}\n"
    request = build_request(registry, context, dockerfile)
    pubsub = redis.pubsub()
    await pubsub.subscribe(log_channel(request.deployment_id))
    published: list[tuple[float, dict[str, Any]]] = []

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                published.append((time.monotonic(), decode_published(message["data"])))
                if published[-1][1]["end"]:
                    return

    async def follow() -> list[str]:
        return [line async for line in follow_build_log(redis, request.deployment_id)]

    listener, follower = asyncio.create_task(listen()), asyncio.create_task(follow())
    environment = ActivityEnvironment()
    heartbeats: list[Any] = []
    environment.on_heartbeat = lambda *details: heartbeats.append(details[0])

    built = await environment.run(activities.build_image, request)
    finished = time.monotonic()
    await asyncio.wait_for(listener, 5)
    followed = await asyncio.wait_for(follower, 5)
    await pubsub.aclose()

    first_seen = next(at for at, message in published if message["line"].endswith(f" first-{marker}"))
    assert finished - first_seen > 1.5, "the first RUN line was not published while the build ran"
    backlog = await read_build_log(redis, request.deployment_id)
    assert [message["line"] for _, message in published] == backlog == followed
    assert published[-1][1]["end"] == "succeeded"
    assert backlog[-1] == f"==> pushed {built.pinned}"
    assert built.log_line_count == len(backlog) - 1  # every line but the end line
    assert [line async for line in follow_build_log(redis, request.deployment_id)] == backlog
    assert len(heartbeats) >= 2 and heartbeats == sorted(heartbeats) and heartbeats[-1] > 0


async def test_a_retry_after_success_returns_the_same_digest_without_rebuilding(
    activities: BuildActivities, registry: Registry, context: Path, base: str, redis: Redis
) -> None:
    request = build_request(registry, context, f"FROM {base}\nRUN echo {uuid.uuid4().hex} > /id\n")
    first = await build(activities, request)

    again = await build(activities, request)

    assert (again.digest, again.pinned, again.reused, again.log_line_count) == (
        first.digest, first.pinned, True, 0,
    )  # fmt: skip
    log = await read_build_log(redis, request.deployment_id)
    assert log[-1] == f"==> {request.image} is already in the registry as {first.digest}: not rebuilt"
    assert sum(line.startswith("==> building") for line in log) == 1


async def test_a_buildkit_cache_mount_is_reused_on_a_rebuild(
    activities: BuildActivities, registry: Registry, context: Path, base: str, redis: Redis
) -> None:
    cache, marker = f"dockyard-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    mount = f"--mount=type=cache,id={cache},target=/cache"
    await build(
        activities,
        build_request(registry, context, f"FROM {base}\nRUN {mount} echo {marker} > /cache/seen\n"),
    )

    rebuild = build_request(registry, context, f'FROM {base}\nRUN {mount} echo "seen $(cat /cache/seen)"\n')
    await build(activities, rebuild)

    assert any(
        line.endswith(f" seen {marker}") for line in await read_build_log(redis, rebuild.deployment_id)
    )


async def test_the_registry_password_never_reaches_the_log(
    activities: BuildActivities, registry: Registry, context: Path, base: str, redis: Redis
) -> None:
    dockerfile = f'FROM {base}\nARG LEAK\nRUN echo "leaked:$LEAK"\n'
    request = build_request(registry, context, dockerfile, build_args={"LEAK": registry.password})

    await build(activities, request)

    log = await read_build_log(redis, request.deployment_id)
    assert any(line.endswith(" leaked:********") for line in log)
    assert not any(registry.password in line for line in log)


# --- failures ------------------------------------------------------------------------------------------


async def test_a_failing_run_step_names_the_step_and_the_last_lines_and_pushes_nothing(
    activities: BuildActivities,
    settings: Settings,
    registry: Registry,
    context: Path,
    base: str,
    redis: Redis,
) -> None:
    marker = uuid.uuid4().hex[:8]
    dockerfile = (
        f'FROM {base}\nCOPY greeting.txt /\nRUN echo installing; echo "it broke: {marker}" >&2; exit 3\n'
    )
    request = build_request(registry, context, dockerfile)

    error = await build_failure(activities, request)

    assert (error.type, error.non_retryable) == ("BuildFailed", True)
    step = f'[3/3] RUN echo installing; echo "it broke: {marker}" >&2; exit 3'
    assert error.message.splitlines()[0] == f"build failed at step {step}: exit code: 3"
    assert f"it broke: {marker}" in error.message
    details = error.details[0]
    assert (details["step"], details["reason"]) == (step, "exit code: 3")
    assert 10 <= len(details["last_lines"]) <= 20
    assert await registry_digest(settings, request.image) is None
    assert await end_status(redis, request.deployment_id) == "failed"


@pytest.mark.parametrize(
    ("dockerfile", "path", "reason"),
    [
        pytest.param(
            "FROM {base}\nRUNN true\n", "Dockerfile", "unknown instruction: RUNN", id="syntax-error"
        ),
        pytest.param(
            None, "nope/Dockerfile", "no Dockerfile at nope/Dockerfile in the source", id="no-dockerfile"
        ),
        pytest.param("FROM {base}\nCOPY missing.txt /\n", "Dockerfile", "not found", id="missing-file"),
    ],
)
async def test_bad_sources_fail_with_a_reason(
    activities: BuildActivities,
    registry: Registry,
    context: Path,
    base: str,
    dockerfile: str | None,
    path: str,
    reason: str,
) -> None:
    text = dockerfile.format(base=base) if dockerfile else None
    request = build_request(registry, context, text, dockerfile_path=path)

    error = await build_failure(activities, request)

    assert (error.type, error.non_retryable) == ("BuildFailed", True)
    assert reason in error.message.splitlines()[0]


async def test_a_build_over_its_time_limit_is_killed(
    activities: BuildActivities, registry: Registry, context: Path, base: str, redis: Redis
) -> None:
    seconds = random.randint(10_000, 99_999)
    request = build_request(registry, context, f"FROM {base}\nRUN sleep {seconds}\n", timeout_seconds=3)
    started = time.monotonic()

    error = await build_failure(activities, request)

    assert (error.type, error.message, error.non_retryable) == (
        "BuildTimedOut",
        "build timed out after 3s",
        True,
    )
    assert time.monotonic() - started < 3 + 5
    assert processes_with("docker", "build", request.image) == []
    await until(lambda: not processes_with("sleep", str(seconds)), 15, "the RUN step was not stopped")
    assert await end_status(redis, request.deployment_id) == "timed_out"


async def test_cancelling_the_activity_kills_the_build(
    activities: BuildActivities, registry: Registry, context: Path, base: str, redis: Redis
) -> None:
    seconds, marker = random.randint(10_000, 99_999), uuid.uuid4().hex[:8]
    request = build_request(registry, context, f"FROM {base}\nRUN echo started-{marker}; sleep {seconds}\n")
    environment = ActivityEnvironment()
    running = asyncio.create_task(environment.run(activities.build_image, request))
    await until_logged(redis, request.deployment_id, f" started-{marker}")
    assert processes_with("docker", "build", request.image) != []

    environment.cancel()

    with pytest.raises(asyncio.CancelledError):
        await running
    assert processes_with("docker", "build", request.image) == []
    await until(lambda: not processes_with("sleep", str(seconds)), 15, "the RUN step was not stopped")
    assert (await read_build_log(redis, request.deployment_id))[-1] == "==> build cancelled"
    assert await end_status(redis, request.deployment_id) == "cancelled"


async def test_wrong_registry_credentials_fail_before_building(
    settings: Settings, registry: Registry, context: Path, base: str, redis: Redis
) -> None:
    wrong_password = load_settings(**{**settings.model_dump(), "registry_password": "wrong"})
    wrong = BuildActivities(wrong_password)
    request = build_request(registry, context, f"FROM {base}\n")

    error = await build_failure(wrong, request)

    assert (error.type, error.non_retryable) == ("RegistryAccessDenied", True)
    assert await read_build_log(redis, request.deployment_id) == [f"==> {error.message}"]
    assert await end_status(redis, request.deployment_id) == "failed"


# --- memory limit, on an engine of its own (its BuildKit cgroup is the builds' alone) ---------------------


class DedicatedEngine:
    """A second dockerd with its own images and `--cgroup-parent`, so the limit touches no other build."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dy-engine-"))  # short: unix socket paths are limited
        self.cgroup_parent = f"dockyard-test-builds-{os.getpid()}"
        self.host = f"unix://{self.root / 'docker.sock'}"
        # Its own bridge: a dockerd started with `--bridge none` deletes the host's docker0 at start,
        # cutting the machine's main engine off its containers' network.
        self.bridge = f"dy-test-{os.getpid() % 100000}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DedicatedEngine:
        dockerd = shutil.which("dockerd")
        if dockerd is None or os.geteuid() != 0:
            missing_component("a dedicated Docker Engine needs dockerd and root")
        if not Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").is_file():
            missing_component("no cgroup v1 memory controller at /sys/fs/cgroup/memory")
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True, capture_output=True)
        with (self.root / "dockerd.log").open("wb") as log:
            self.process = subprocess.Popen(
                [dockerd, "--host", self.host, *self._options()],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = self._wait_for_client()
        try:
            client.api.import_image_from_data(
                busybox_rootfs(), repository="dockyard/busybox", tag="local", changes=["ENV PATH=/bin"]
            )
        finally:
            client.close()
        return self

    def _options(self) -> list[str]:
        options = f"""
            --data-root {self.root}/data --exec-root {self.root}/exec --pidfile {self.root}/dockerd.pid
            --bridge {self.bridge} --iptables=false --ip-masq=false --cgroup-parent {self.cgroup_parent}
        """
        return options.split()

    def _wait_for_client(self) -> docker.DockerClient:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (self.root / "docker.sock").exists():
                client = docker.DockerClient(base_url=self.host, timeout=60)
                try:
                    client.ping()
                    return client
                except docker.errors.DockerException:
                    client.close()
            time.sleep(0.1)
        raise RuntimeError(f"dockerd not ready: {(self.root / 'dockerd.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(60)
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        for controller in Path("/sys/fs/cgroup").iterdir():
            cgroup = controller / self.cgroup_parent
            if cgroup.is_dir():
                for child in sorted((p for p in cgroup.rglob("*") if p.is_dir()), reverse=True):
                    child.rmdir()
                cgroup.rmdir()


@pytest.fixture(scope="module")
def dedicated_engine() -> Iterator[DedicatedEngine]:
    engine = DedicatedEngine()
    try:
        yield engine.start()
    finally:
        engine.stop()


async def test_the_memory_limit_caps_run_steps(
    settings: Settings, registry: Registry, context: Path, dedicated_engine: DedicatedEngine
) -> None:
    on_engine = settings.model_copy(
        update={
            "build_docker_host": dedicated_engine.host,
            "build_engine_cgroup_parent": dedicated_engine.cgroup_parent,
        }
    )
    activities = BuildActivities(on_engine)
    limit = 128 * MEBIBYTE
    allocate = "FROM dockyard/busybox:local\nRUN busybox dd if=/dev/zero of=/dev/null bs={size}M count=1\n"

    within = build_request(registry, context, allocate.format(size=32), memory_limit_bytes=limit)
    await build(activities, within)
    assert (buildkit_memory_cgroup(on_engine) / "memory.limit_in_bytes").read_text().strip() == str(limit)

    over = build_request(registry, context, allocate.format(size=400), memory_limit_bytes=limit)
    error = await build_failure(activities, over)

    assert (error.type, error.non_retryable) == ("BuildFailed", True)
    assert error.details[0]["step"] == "[2/2] RUN busybox dd if=/dev/zero of=/dev/null bs=400M count=1"
    assert (
        error.details[0]["reason"] == "exit code: 137 (killed: the build ran out of its 128 MiB memory limit)"
    )
    assert await registry_digest(settings, over.image) is None
