"""The build activity: `docker build` (BuildKit) → `docker push` → the digest the registry holds, with every
output line streamed to Redis as it arrives (see core/build_logs.py for the keys).

A build attempt, step by step:
  1. the tag is already in the registry (a retry after a crash that followed the push) → return its digest
  2. the registry's credentials into a throw-away DOCKER_CONFIG (base images may sit in our registry)
  3. cap the memory of the engine's BuildKit RUN steps, when a limit is asked for
  4. `docker build --progress=plain` in its own process group; killed on timeout and on cancellation
  5. `docker push`; its last line names the digest
Failures are ApplicationErrors a user can act on: BuildFailed (the failing step and the last lines; nothing
is pushed), BuildTimedOut, RegistryAccessDenied, BuildMemoryLimitUnavailable; all non-retryable. Anything
else (registry or engine unreachable, Redis down) is retried by Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.registry import RegistryActivities
from core.build import (
    MEBIBYTE,
    BuildFailure,
    BuildRequest,
    BuiltImage,
    Command,
    build_command,
    buildkit_memory_cgroup,
    describe_failure,
    dockerfile_location,
    is_access_denied,
    memory_limit_writes,
    push_command,
    pushed_digest,
    write_registry_auth,
)
from core.build_logs import BuildEnd, BuildLogWriter
from core.settings import Settings

LINE_LIMIT_BYTES = 1024 * 1024  # a longer line (a minified bundle echoed by a RUN) is cut, not fatal
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

LineSink = Callable[[str], Awaitable[None]]


class BuildActivities:
    def __init__(self, settings: Settings, redis_url: str | None = None) -> None:
        self.settings = settings
        self.redis_url = redis_url or settings.redis_url

    @activity.defn
    async def build_image(self, request: BuildRequest) -> BuiltImage:
        """Build the deployment's image, push it, and return the digest it is pinned by (idempotent)."""
        started = time.monotonic()
        redis = Redis.from_url(self.redis_url)
        try:
            log = BuildLogWriter(
                redis,
                request.deployment_id,
                max_lines=self.settings.build_log_max_lines,
                retention_seconds=self.settings.build_log_retention_seconds,
                secrets=[self._password()],
            )
            async with heartbeating(lambda: log.line_count):
                digest, reused = await self._attempt(request, log)
        finally:
            await redis.aclose()
        return BuiltImage(
            digest=digest,
            pinned=f"{request.image_repository}@{digest}",
            duration_seconds=round(time.monotonic() - started, 3),
            log_line_count=log.line_count,
            reused=reused,
        )

    async def _attempt(self, request: BuildRequest, log: BuildLogWriter) -> tuple[str, bool]:
        """One attempt, which always ends the log with a status line (unless Redis itself is down)."""
        timeout = request.timeout_seconds or self.settings.build_timeout_seconds
        try:
            if (existing := await self._registry_digest(request)) is not None:
                await log.end(
                    BuildEnd.SUCCEEDED,
                    f"==> {request.image} is already in the registry as {existing}: not rebuilt",
                )
                return existing, True
            with tempfile.TemporaryDirectory(prefix="dockyard-build-") as workdir:
                async with asyncio.timeout(timeout):
                    digest = await self._build_and_push(request, Path(workdir), log)
        except TimeoutError:
            await _end_quietly(log, BuildEnd.TIMED_OUT, f"==> build timed out after {timeout:g}s")
            raise ApplicationError(
                f"build timed out after {timeout:g}s", type="BuildTimedOut", non_retryable=True
            ) from None
        except asyncio.CancelledError:
            await _end_quietly(log, BuildEnd.CANCELLED, "==> build cancelled")
            raise
        except ApplicationError as exc:
            status = BuildEnd.FAILED if exc.non_retryable else BuildEnd.ERROR
            await _end_quietly(log, status, f"==> {exc.message.splitlines()[0]}")
            raise
        except Exception as exc:
            await _end_quietly(log, BuildEnd.ERROR, f"==> build attempt failed, to be retried: {exc}")
            raise
        await log.end(BuildEnd.SUCCEEDED, f"==> pushed {request.image_repository}@{digest}")
        return digest, False

    async def _build_and_push(self, request: BuildRequest, workdir: Path, log: BuildLogWriter) -> str:
        await log.write(f"==> building {request.image} (attempt {activity.info().attempt})")
        dockerfile = dockerfile_location(request, workdir)
        _check_sources(request, dockerfile)
        if request.dockerfile is not None:
            dockerfile.write_text(request.dockerfile)
        docker_config = workdir / "docker-config"
        docker_config.mkdir(mode=0o700)
        await self._login(request, docker_config)
        if request.memory_limit_bytes is not None:
            cgroup = self._limit_memory(request.memory_limit_bytes)
            await log.write(
                f"==> memory limit {request.memory_limit_bytes // MEBIBYTE} MiB on the RUN steps ({cgroup})"
            )

        command = build_command(request, self.settings, dockerfile, docker_config)
        exit_code = await self._run(command, log.write)
        if exit_code != 0:
            failure = describe_failure(log.lines, request.memory_limit_bytes)
            raise ApplicationError(
                failure.message(), failure.model_dump(), type="BuildFailed", non_retryable=True
            )

        push_output: list[str] = []

        async def keep_and_log(line: str) -> None:
            push_output.append(line)
            await log.write(line)

        if await self._run(push_command(request, self.settings, docker_config), keep_and_log) != 0:
            raise _registry_error(f"push of {request.image} failed", push_output)
        digest = pushed_digest(push_output) or await self._registry_digest(request)
        if digest is None:
            raise RuntimeError(f"push of {request.image} reported no digest and the registry has none")
        return digest

    async def _registry_digest(self, request: BuildRequest) -> str | None:
        """The digest the registry holds for the tag, or None when the tag is not there."""
        try:
            resolved = await RegistryActivities(self.settings).resolve_image(request.image)
        except ApplicationError as exc:
            if exc.type == "ImageNotFound":
                return None
            raise
        return resolved.digest

    async def _login(self, request: BuildRequest, docker_config: Path) -> None:
        """Credentials for Dockyard's registry (base images, the push) in the build's own config."""
        password = self._password()
        if not password or request.registry_host != self.settings.registry_host:
            return
        write_registry_auth(docker_config, request.registry_host, self.settings.registry_username, password)

    def _limit_memory(self, limit_bytes: int) -> Path:
        """Cap the engine's BuildKit cgroup, the parent of every RUN step's cgroup: with BuildKit, dockerd
        20.10 ignores `docker build --memory` and `docker build --cgroup-parent`. The cap is shared by all
        builds running on the engine at once (one build at a time per builder engine makes it per build)."""
        root = self.settings.build_memory_cgroup_root
        cgroup = buildkit_memory_cgroup(self.settings)
        if not (root / "memory.limit_in_bytes").is_file():
            raise _memory_limit_unavailable(f"no cgroup v1 memory controller at {root}")
        try:
            cgroup.mkdir(parents=True, exist_ok=True)
            swap_accounting = (cgroup / "memory.memsw.limit_in_bytes").is_file()
            for path, value in memory_limit_writes(cgroup, limit_bytes, swap_accounting):
                path.write_text(value)
        except OSError as exc:
            if exc.errno == errno.EBUSY:  # other builds on the engine use more right now: retry later
                raise RuntimeError(f"cannot lower the build memory limit on {cgroup} now: in use") from None
            raise _memory_limit_unavailable(f"cannot write {exc.filename}: {exc.strerror}") from None
        return cgroup

    async def _run(self, command: Command, on_line: LineSink) -> int:
        """Run one docker command in its own process group, feeding each output line to `on_line` as it
        arrives; the group is stopped whenever this returns early (timeout, cancellation, a Redis error)."""
        _check_argv(command)
        process = await asyncio.create_subprocess_exec(
            *command.argv,
            stdin=asyncio.subprocess.PIPE if command.stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", DEFAULT_PATH), **command.env},
            start_new_session=True,
            limit=LINE_LIMIT_BYTES,
        )
        try:
            if command.stdin is not None:
                assert process.stdin is not None
                process.stdin.write(command.stdin.encode())
                await process.stdin.drain()
                process.stdin.close()
            assert process.stdout is not None
            async for line in _lines(process.stdout):
                await on_line(line)
            return await process.wait()
        finally:
            if process.returncode is None:
                await asyncio.shield(_stop_group(process, self.settings.build_kill_grace_seconds))

    def _password(self) -> str:
        password = self.settings.registry_password
        return password.get_secret_value() if password is not None else ""


def _check_sources(request: BuildRequest, dockerfile: Path) -> None:
    problem = None
    if not Path(request.context_dir).is_dir():
        problem = f"the build context {request.context_dir} is not a directory"
    elif request.dockerfile is None and not dockerfile.is_file():
        problem = f"no Dockerfile at {request.dockerfile_path} in the source"
    if problem:
        failure = BuildFailure(step=None, reason=problem, last_lines=[])
        raise ApplicationError(
            failure.message(), failure.model_dump(), type="BuildFailed", non_retryable=True
        )


def _check_argv(command: Command) -> None:
    """A NUL byte (from a Dockerfile path, a build variable) cannot reach exec: the same on every attempt."""
    for word in (*command.argv, *command.env.values()):
        if "\0" in word:
            failure = BuildFailure(
                step=None, reason=f"a build argument contains a NUL byte: {word!r}", last_lines=[]
            )
            raise ApplicationError(
                failure.message(), failure.model_dump(), type="BuildFailed", non_retryable=True
            )


def _registry_error(what: str, output: list[str]) -> Exception:
    last = output[-1] if output else "no output"
    if is_access_denied(output):
        return ApplicationError(
            f"{what}: {last} (check the registry credentials)",
            type="RegistryAccessDenied",
            non_retryable=True,
        )
    return RuntimeError(f"{what}: {last}")


def _memory_limit_unavailable(reason: str) -> ApplicationError:
    return ApplicationError(
        f"cannot enforce the build memory limit: {reason} (cgroup v1 and root are needed; "
        "leave the limit unset on this builder otherwise)",
        type="BuildMemoryLimitUnavailable",
        non_retryable=True,
    )


async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    while True:
        try:
            raw = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # end of output, maybe with an unterminated last line
            if exc.partial:
                yield exc.partial.decode(errors="replace").rstrip("\r")
            return
        except asyncio.LimitOverrunError as exc:
            raw = await stream.read(exc.consumed)
        yield raw.decode(errors="replace").rstrip("\r\n")


async def _stop_group(process: asyncio.subprocess.Process, grace_seconds: float) -> None:
    """SIGTERM the group (the docker CLI then cancels the build in the engine, which stops the RUN
    processes), SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), grace_seconds)
            return
        except TimeoutError:
            continue
    await process.wait()


async def _end_quietly(log: BuildLogWriter, status: BuildEnd, line: str) -> None:
    """End the log, but never hide the build's own error behind a Redis one."""
    with contextlib.suppress(RedisError, OSError):
        await log.end(status, line)
