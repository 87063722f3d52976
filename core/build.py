"""Image builds as data (pure): the request and result, the exact `docker` command lines the build activity
runs (from the `build_*` settings), and how BuildKit's plain progress output is read back.

    request = BuildRequest(deployment_id="d1", context_dir="/src", dockerfile="FROM ...",
                           image_repository="127.0.0.1:5000/shop/web", tag="d1")
    build_command(request, settings, dockerfile_file=Path("/tmp/x/Dockerfile"), docker_config=Path("/tmp/c"))
    # /usr/bin/docker build --progress=plain --file /tmp/x/Dockerfile --tag 127.0.0.1:5000/shop/web:d1 /src
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import Field, field_validator

from core.contracts import Contract
from core.images import InvalidImageReference, parse_image_reference
from core.settings import Settings

FAILURE_TAIL_LINES = 20
MEBIBYTE = 1024 * 1024

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DEPLOYMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_BUILD_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The docker CLI reads these itself: a build arg so named cannot travel in the environment.
_CLI_VARIABLES = re.compile(r"^(PATH|HOME|TMPDIR|DOCKER_.*|BUILDKIT_.*)$")


class BuildRequest(Contract):
    """One image build for one deployment. The Dockerfile is either given as text (a generated one, written
    outside the context) or found at `dockerfile_path` inside the context (a user's own)."""

    deployment_id: str = Field(pattern=_DEPLOYMENT_ID.pattern)
    context_dir: str = Field(description="absolute path of the build context on the builder host")
    dockerfile: str | None = Field(default=None, description="Dockerfile text; None uses dockerfile_path")
    dockerfile_path: str = Field(default="Dockerfile", description="relative to the context")
    image_repository: str = Field(description="registry/name without tag, e.g. 127.0.0.1:5000/shop/web")
    tag: str = Field(pattern=_TAG.pattern, description="one per deployment")
    build_args: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(default=None, gt=0, description="None: the builder's default")
    memory_limit_bytes: int | None = Field(default=None, ge=16 * MEBIBYTE)

    @field_validator("context_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not PurePosixPath(value).is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("dockerfile_path")
    @classmethod
    def _inside_context(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError("must be a relative path inside the build context")
        return value

    @field_validator("build_args")
    @classmethod
    def _arg_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not _BUILD_ARG_NAME.match(name)]
        if bad:
            raise ValueError(f"invalid build argument names: {', '.join(sorted(bad))}")
        return value

    @field_validator("image_repository")
    @classmethod
    def _repository_without_tag(cls, value: str) -> str:
        if "@" in value or ":" in value.rsplit("/", 1)[-1]:
            raise ValueError("must be registry/name, with no tag or digest")
        try:
            ref = parse_image_reference(value)
        except InvalidImageReference as exc:
            raise ValueError(str(exc)) from None
        if f"{ref.registry}/{ref.repository}" != value:
            raise ValueError(f"must name its registry, as in {ref.registry}/{ref.repository}")
        return value

    @property
    def image(self) -> str:
        return f"{self.image_repository}:{self.tag}"

    @property
    def registry_host(self) -> str:
        return self.image_repository.split("/", 1)[0]


class BuiltImage(Contract):
    digest: str = Field(description="sha256:... of the manifest in the registry")
    pinned: str = Field(description="registry/name@sha256:..., what replicas run")
    duration_seconds: float
    log_line_count: int
    reused: bool = Field(default=False, description="already in the registry (a retry): not rebuilt")


class BuildFailure(Contract):
    """Why a build failed, in the words a user can act on (the `details` of a BuildFailed error)."""

    step: str | None = Field(description="the failing step as BuildKit names it, e.g. [2/3] RUN make")
    reason: str
    last_lines: list[str]

    def message(self) -> str:
        where = f"build failed at step {self.step}" if self.step else "build failed"
        lines = "\n".join(self.last_lines)
        return f"{where}: {self.reason}\nlast {len(self.last_lines)} lines of output:\n{lines}"


# --- commands -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """What the executor runs: argv, the variables added to a minimal environment, and stdin."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = field(default=None, repr=False)


def client_env(settings: Settings, docker_config: Path) -> dict[str, str]:
    # A per-build DOCKER_CONFIG keeps the registry credentials out of ~/.docker and away from other builds.
    return {"DOCKER_HOST": settings.build_docker_host, "DOCKER_CONFIG": str(docker_config)}


def write_registry_auth(docker_config: Path, registry_host: str, username: str, password: str) -> Path:
    """What `docker login` leaves in DOCKER_CONFIG, written directly (no process, no round trip):
    the registry's basic credentials in config.json, readable by the owner only."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    path = docker_config / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump({"auths": {registry_host: {"auth": auth}}}, file)
    return path


def login_command(
    settings: Settings, docker_config: Path, registry_host: str, username: str, password: str
) -> Command:
    docker = str(settings.build_docker_binary)
    argv = [docker, "login", "--username", username, "--password-stdin", registry_host]
    return Command(argv, client_env(settings, docker_config), stdin=password)


def build_command(
    request: BuildRequest, settings: Settings, dockerfile_file: Path, docker_config: Path
) -> Command:
    """`docker build` with BuildKit and plain progress. Build-arg values travel in the environment
    (`--build-arg NAME` reads $NAME), so they never show in a process list."""
    argv = [str(settings.build_docker_binary), "build", "--progress=plain", "--file", str(dockerfile_file)]
    argv += ["--tag", request.image]
    if settings.build_network:
        argv += ["--network", settings.build_network]
    env = {**client_env(settings, docker_config), "DOCKER_BUILDKIT": "1"}
    for name, value in sorted(request.build_args.items()):
        if _CLI_VARIABLES.match(name):
            argv += ["--build-arg", f"{name}={value}"]
        else:
            argv += ["--build-arg", name]
            env[name] = value
    argv.append(request.context_dir)
    return Command(argv, env)


def push_command(request: BuildRequest, settings: Settings, docker_config: Path) -> Command:
    argv = [str(settings.build_docker_binary), "push", request.image]
    return Command(argv, client_env(settings, docker_config))


def dockerfile_location(request: BuildRequest, workdir: Path) -> Path:
    """Generated Dockerfiles go next to (never inside) the context, so they cannot leak into the image."""
    if request.dockerfile is not None:
        return workdir / "Dockerfile"
    return Path(request.context_dir) / request.dockerfile_path


def buildkit_memory_cgroup(settings: Settings) -> Path:
    """The cgroup (v1 memory controller) every BuildKit RUN step of the builder engine is created under:
    dockerd puts them at <its --cgroup-parent>/buildkit/<id>, whatever `docker build --memory` says."""
    return settings.build_memory_cgroup_root / settings.build_engine_cgroup_parent.strip("/") / "buildkit"


def memory_limit_writes(cgroup: Path, limit_bytes: int, has_swap_accounting: bool) -> list[tuple[Path, str]]:
    """The writes that cap the cgroup at `limit_bytes` of memory and no swap, in an order the kernel accepts
    from any previous value (memsw must never be below the memory limit)."""
    if not has_swap_accounting:
        return [(cgroup / "memory.limit_in_bytes", str(limit_bytes))]
    memsw = cgroup / "memory.memsw.limit_in_bytes"
    return [(memsw, "-1"), (cgroup / "memory.limit_in_bytes", str(limit_bytes)), (memsw, str(limit_bytes))]


# --- reading BuildKit's plain progress output -------------------------------------------------------------

_VERTEX_LINE = re.compile(r"^#(\d+) (.*)$")
_VERTEX_DIGEST = re.compile(r"^#\d+ sha256:[0-9a-f]{64}$")
_VERTEX_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")
_PROCESS_EXIT = re.compile(
    r'^(?:executor failed running \[.*\]|process ".*" did not complete successfully): (exit code: \d+)$'
)
_PUSHED_DIGEST = re.compile(r"\bdigest: (sha256:[0-9a-f]{64})\b")
OUT_OF_MEMORY_EXIT = "exit code: 137"


def describe_failure(
    lines: Sequence[str], memory_limit_bytes: int | None = None, tail: int = FAILURE_TAIL_LINES
) -> BuildFailure:
    """The failing step and its error, from `docker build --progress=plain` output (BuildKit 0.8 in Docker
    20.10 and later releases). The first ERROR wins: later ones are usually steps cancelled because of it."""
    names: dict[str, str] = {}
    step = reason = None
    for line in lines:
        if error := _VERTEX_ERROR.match(line):
            step, reason = names.get(error[1]), error[2]
            break
        if (vertex := _VERTEX_LINE.match(line)) and vertex[1] not in names:
            names[vertex[1]] = vertex[2]  # a vertex's first line is its name
    if reason is None:
        reason = _last_error_line(lines)
    elif exit_status := _PROCESS_EXIT.match(reason):
        reason = exit_status[1]
    if reason == OUT_OF_MEMORY_EXIT and memory_limit_bytes is not None:
        reason += f" (killed: the build ran out of its {memory_limit_bytes // MEBIBYTE} MiB memory limit)"
    return BuildFailure(step=step, reason=reason, last_lines=_meaningful(lines)[-tail:] if tail else [])


def _meaningful(lines: Sequence[str]) -> list[str]:
    """Output without blank lines and Docker 20.10's `#N sha256:...` vertex digests."""
    return [line for line in lines if line.strip() and not _VERTEX_DIGEST.match(line)]


def _last_error_line(lines: Sequence[str]) -> str:
    """Errors that belong to no step (a Dockerfile syntax error, an unknown flag) come last, unprefixed."""
    for line in reversed(lines):
        text = line.strip()
        if text and not text.startswith(("#", "------", ">")):
            return text.removeprefix("ERROR: ")
    return "docker build failed with no error message"


def pushed_digest(lines: Sequence[str]) -> str | None:
    """`<tag>: digest: sha256:... size: N`, the last line of a successful `docker push`."""
    for line in reversed(lines):
        if match := _PUSHED_DIGEST.search(line):
            return match[1]
    return None


def is_access_denied(lines: Sequence[str]) -> bool:
    text = "\n".join(lines[-5:]).lower()
    return "unauthorized" in text or "denied" in text or "authentication required" in text
