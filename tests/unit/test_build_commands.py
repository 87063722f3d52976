"""The build's commands are data: the exact docker command lines per request, the cgroup writes of the memory
limit, and how BuildKit's plain progress output is read back (failing step, pushed digest)."""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.build import (
    BuildFailure,
    BuildRequest,
    build_command,
    buildkit_memory_cgroup,
    describe_failure,
    dockerfile_location,
    is_access_denied,
    login_command,
    memory_limit_writes,
    push_command,
    pushed_digest,
    write_registry_auth,
)
from core.settings import Settings

DIGEST = "sha256:" + "ab" * 32
CONFIG = Path("/tmp/b/docker-config")
GENERATED = Path("/tmp/b/Dockerfile")
CLIENT_ENV = {"DOCKER_HOST": "unix:///var/run/docker.sock", "DOCKER_CONFIG": str(CONFIG)}


def request(**changes: Any) -> BuildRequest:
    fields: dict[str, Any] = {
        "deployment_id": "dep-1",
        "context_dir": "/src/web",
        "dockerfile": "FROM debian\n",
        "image_repository": "127.0.0.1:5000/shop/web",
        "tag": "dep-1",
    }
    return BuildRequest(**{**fields, **changes})


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults under test are Dockyard's, not those of the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)


def builder(**changes: Any) -> Settings:
    return Settings(**changes)


@pytest.mark.parametrize(
    ("req", "changes", "argv", "env"),
    [
        pytest.param(
            request(),
            {},
            "/usr/bin/docker build --progress=plain --file /tmp/b/Dockerfile"
            " --tag 127.0.0.1:5000/shop/web:dep-1 /src/web",
            {**CLIENT_ENV, "DOCKER_BUILDKIT": "1"},
            id="generated-dockerfile",
        ),
        pytest.param(
            request(dockerfile=None, dockerfile_path="deploy/web.Dockerfile"),
            {"build_docker_host": "unix:///run/builder.sock", "build_network": "host"},
            "/usr/bin/docker build --progress=plain --file /src/web/deploy/web.Dockerfile"
            " --tag 127.0.0.1:5000/shop/web:dep-1 --network host /src/web",
            {**CLIENT_ENV, "DOCKER_HOST": "unix:///run/builder.sock", "DOCKER_BUILDKIT": "1"},
            id="user-dockerfile-other-engine-host-network",
        ),
        pytest.param(
            request(build_args={"NODE_ENV": "production", "API_KEY": "s3cret"}),
            {"build_docker_binary": Path("/opt/docker")},
            "/opt/docker build --progress=plain --file /tmp/b/Dockerfile --tag 127.0.0.1:5000/shop/web:dep-1"
            " --build-arg API_KEY --build-arg NODE_ENV /src/web",
            {**CLIENT_ENV, "DOCKER_BUILDKIT": "1", "API_KEY": "s3cret", "NODE_ENV": "production"},
            id="build-arg-values-in-the-environment-not-argv",
        ),
        pytest.param(
            request(build_args={"PATH": "/app/bin", "DOCKER_TAG": "x"}),
            {},
            "/usr/bin/docker build --progress=plain --file /tmp/b/Dockerfile"
            " --tag 127.0.0.1:5000/shop/web:dep-1"
            " --build-arg DOCKER_TAG=x --build-arg PATH=/app/bin /src/web",
            {**CLIENT_ENV, "DOCKER_BUILDKIT": "1"},
            id="build-args-the-cli-reads-itself-go-in-argv",
        ),
    ],
)
def test_build_command(req: BuildRequest, changes: dict[str, Any], argv: str, env: dict[str, str]) -> None:
    dockerfile = dockerfile_location(req, GENERATED.parent)
    command = build_command(req, builder(**changes), dockerfile, CONFIG)
    assert (shlex.join(command.argv), command.env, command.stdin) == (argv, env, None)


def test_login_reads_the_password_from_stdin_never_argv() -> None:
    command = login_command(builder(), CONFIG, "127.0.0.1:5000", "dockyard", "pa55")
    assert (
        shlex.join(command.argv)
        == "/usr/bin/docker login --username dockyard --password-stdin 127.0.0.1:5000"
    )
    assert command.env == CLIENT_ENV
    assert command.stdin == "pa55"
    assert "pa55" not in repr(command)


def test_registry_credentials_are_written_as_docker_login_would_for_the_owner_only(tmp_path: Path) -> None:
    path = write_registry_auth(tmp_path, "127.0.0.1:5000", "dockyard", "pa55")
    assert json.loads(path.read_text()) == {"auths": {"127.0.0.1:5000": {"auth": "ZG9ja3lhcmQ6cGE1NQ=="}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_push_command() -> None:
    command = push_command(request(), builder(), CONFIG)
    assert (shlex.join(command.argv), command.env) == (
        "/usr/bin/docker push 127.0.0.1:5000/shop/web:dep-1",
        CLIENT_ENV,
    )


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        pytest.param(request(), Path("/work/Dockerfile"), id="text-outside-the-context"),
        pytest.param(request(dockerfile=None), Path("/src/web/Dockerfile"), id="default-path"),
        pytest.param(
            request(dockerfile=None, dockerfile_path="api/Dockerfile"),
            Path("/src/web/api/Dockerfile"),
            id="path",
        ),
    ],
)
def test_dockerfile_location(req: BuildRequest, expected: Path) -> None:
    assert dockerfile_location(req, Path("/work")) == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"context_dir": "src"}, "absolute path", id="relative-context"),
        pytest.param({"dockerfile_path": "../Dockerfile"}, "inside the build context", id="path-escapes"),
        pytest.param({"dockerfile_path": "/etc/Dockerfile"}, "inside the build context", id="absolute-path"),
        pytest.param({"image_repository": "127.0.0.1:5000/shop/web:v1"}, "no tag", id="repository-with-tag"),
        pytest.param({"image_repository": "127.0.0.1:5000/Shop"}, "lowercase", id="bad-repository"),
        pytest.param({"image_repository": "shop/web"}, "must name its registry", id="no-registry"),
        pytest.param({"tag": "-bad"}, "tag", id="bad-tag"),
        pytest.param({"build_args": {"1X": "y"}}, "invalid build argument names: 1X", id="bad-arg-name"),
        pytest.param({"memory_limit_bytes": 1024}, "memory_limit_bytes", id="tiny-memory-limit"),
        pytest.param({"timeout_seconds": 0}, "timeout_seconds", id="zero-timeout"),
    ],
)
def test_bad_requests_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        request(**changes)


def test_memory_limit_goes_on_the_engines_buildkit_cgroup() -> None:
    settings = builder(build_memory_cgroup_root=Path("/cg/memory"), build_engine_cgroup_parent="/builds/")
    assert buildkit_memory_cgroup(settings) == Path("/cg/memory/builds/buildkit")
    assert buildkit_memory_cgroup(builder()) == Path("/sys/fs/cgroup/memory/docker/buildkit")


@pytest.mark.parametrize(
    ("swap_accounting", "expected"),
    [
        pytest.param(False, [("memory.limit_in_bytes", "67108864")], id="no-swap-accounting"),
        pytest.param(
            True,
            [
                ("memory.memsw.limit_in_bytes", "-1"),
                ("memory.limit_in_bytes", "67108864"),
                ("memory.memsw.limit_in_bytes", "67108864"),
            ],
            id="memory-and-swap-capped-in-an-order-the-kernel-accepts",
        ),
    ],
)
def test_memory_limit_writes(swap_accounting: bool, expected: list[tuple[str, str]]) -> None:
    cgroup = Path("/cg/docker/buildkit")
    writes = memory_limit_writes(cgroup, 64 * 1024 * 1024, swap_accounting)
    assert writes == [(cgroup / name, value) for name, value in expected]


RUN_FAILED_DOCKER_20 = """\
#4 [1/3] FROM docker.io/dockyard/busybox:local
#4 sha256:19f8cd542dd996989608ef74bb31a9d0522afca0a5b74e9b460d1c5950859770
#4 CACHED

#5 [2/3] RUN echo installing; echo boom >&2; exit 3
#5 sha256:5ead69973e8d93140a30e67a25eb7e52664d03ffd356bae742f119721f832822
#5 0.035 installing
#5 0.035 boom
#5 ERROR: executor failed running [/bin/sh -c echo installing; echo boom >&2; exit 3]: exit code: 3
------
 > [2/3] RUN echo installing; echo boom >&2; exit 3:
------
executor failed running [/bin/sh -c echo installing; echo boom >&2; exit 3]: exit code: 3"""

RUN_FAILED_BUILDKIT_0_11 = """\
#5 [2/2] RUN npm ci
#5 1.204 npm ERR! missing package-lock.json
#5 ERROR: process "/bin/sh -c npm ci" did not complete successfully: exit code: 1
------
 > [2/2] RUN npm ci:
------
ERROR: failed to solve: process "/bin/sh -c npm ci" did not complete successfully: exit code: 1"""

COPY_MISSING = """\
#6 [2/2] COPY nothere /x
#6 sha256:7bac6941ac62fcd54696b9ee4d19e6b5fd444513c5872439ae8271a7c74b49e5
#6 ERROR: "/nothere" not found: not found
------
 > [2/2] COPY nothere /x:
------
failed to compute cache key: "/nothere" not found: not found"""

SYNTAX_ERROR = """\
#2 [internal] load .dockerignore
#2 DONE 0.0s
failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2: \
unknown instruction: FOO"""

OUT_OF_MEMORY = """\
#5 [2/2] RUN python3 train.py
#5 ERROR: executor failed running [/bin/sh -c python3 train.py]: exit code: 137"""


@pytest.mark.parametrize(
    ("output", "memory_limit", "step", "reason"),
    [
        pytest.param(
            RUN_FAILED_DOCKER_20, None, "[2/3] RUN echo installing; echo boom >&2; exit 3", "exit code: 3",
            id="run-step-docker-20.10",
        ),
        pytest.param(
            RUN_FAILED_BUILDKIT_0_11, None, "[2/2] RUN npm ci", "exit code: 1", id="run-step-newer-buildkit"
        ),
        pytest.param(
            COPY_MISSING, None, "[2/2] COPY nothere /x", '"/nothere" not found: not found', id="copy-source"
        ),
        pytest.param(
            SYNTAX_ERROR, None, None,
            "failed to solve with frontend dockerfile.v0: failed to create LLB definition: "
            "dockerfile parse error line 2: unknown instruction: FOO",
            id="syntax-error-belongs-to-no-step",
        ),
        pytest.param(
            OUT_OF_MEMORY, 256 * 1024 * 1024, "[2/2] RUN python3 train.py",
            "exit code: 137 (killed: the build ran out of its 256 MiB memory limit)",
            id="killed-by-the-memory-limit",
        ),
        pytest.param(
            OUT_OF_MEMORY, None, "[2/2] RUN python3 train.py", "exit code: 137", id="137-without-a-limit"
        ),
        pytest.param("", None, None, "docker build failed with no error message", id="no-output"),
    ],
)  # fmt: skip
def test_describe_failure(output: str, memory_limit: int | None, step: str | None, reason: str) -> None:
    failure = describe_failure(output.splitlines(), memory_limit)
    assert (failure.step, failure.reason) == (step, reason)


def test_the_failure_keeps_the_last_meaningful_lines() -> None:
    failure = describe_failure(RUN_FAILED_DOCKER_20.splitlines(), tail=6)
    assert failure.last_lines == [
        "#5 0.035 boom",
        "#5 ERROR: executor failed running [/bin/sh -c echo installing; echo boom >&2; exit 3]: exit code: 3",
        "------",
        " > [2/3] RUN echo installing; echo boom >&2; exit 3:",
        "------",
        "executor failed running [/bin/sh -c echo installing; echo boom >&2; exit 3]: exit code: 3",
    ]
    assert failure.message().splitlines()[:2] == [
        "build failed at step [2/3] RUN echo installing; echo boom >&2; exit 3: exit code: 3",
        "last 6 lines of output:",
    ]


def test_a_failure_with_no_step_says_so() -> None:
    failure = BuildFailure(step=None, reason="no Dockerfile at Dockerfile in the source", last_lines=[])
    assert failure.message().splitlines()[0] == "build failed: no Dockerfile at Dockerfile in the source"


@pytest.mark.parametrize(
    ("output", "digest"),
    [
        pytest.param(
            ["The push refers to repository [127.0.0.1:5000/shop/web]", "a7063ccd38d2: Pushed",
             f"dep-1: digest: {DIGEST} size: 941"],
            DIGEST,
            id="pushed",
        ),
        pytest.param(["a7063ccd38d2: Layer already exists", f"dep-1: digest: {DIGEST} size: 941"], DIGEST,
                     id="already-there"),
        pytest.param(["unauthorized: authentication required"], None, id="refused"),
    ],
)  # fmt: skip
def test_pushed_digest(output: list[str], digest: str | None) -> None:
    assert pushed_digest(output) == digest


@pytest.mark.parametrize(
    ("output", "denied"),
    [
        pytest.param(["unauthorized: authentication required"], True, id="unauthorized"),
        pytest.param(["denied: requested access to the resource is denied"], True, id="denied"),
        pytest.param(
            ["Get http://127.0.0.1:5000/v2/: dial tcp: connection refused"], False, id="unreachable"
        ),
    ],
)
def test_is_access_denied(output: list[str], denied: bool) -> None:
    assert is_access_denied(output) is denied
