"""The real nixpacks CLI as data: the exact command lines, the missing-binary error, and how its plan and
Dockerfile are read back. No nixpacks binary exists on these machines and none is faked: what the CLI prints
here is written after nixpacks' source (src/main.rs, builder/docker/dockerfile_generation.rs)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from core.build import Command
from core.nixpacks import (
    NixpacksError,
    dockerfile_command,
    generated_dockerfile,
    parse_plan,
    pin_build_args,
    plan_command,
    plan_variables,
    require_binary,
)

SOURCE = Path("/b/dep_1/src/web")
VARIABLES = {"NIXPACKS_BUILD_CMD": "npm run build:prod", "NIXPACKS_NODE_VERSION": "20"}


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        pytest.param(
            plan_command("nixpacks", SOURCE, {}),
            "nixpacks plan /b/dep_1/src/web --format json",
            id="plan",
        ),
        pytest.param(
            plan_command("/opt/bin/nixpacks", SOURCE, VARIABLES),
            "/opt/bin/nixpacks plan /b/dep_1/src/web --format json"
            " --env 'NIXPACKS_BUILD_CMD=npm run build:prod' --env NIXPACKS_NODE_VERSION=20",
            id="plan-with-variables",
        ),
        pytest.param(
            dockerfile_command("nixpacks", SOURCE, {}, cache_key="svc_1"),
            "nixpacks build /b/dep_1/src/web --out /b/dep_1/src/web --cache-key svc_1",
            id="dockerfile-into-the-source",
        ),
        pytest.param(
            dockerfile_command("nixpacks", SOURCE, VARIABLES, cache_key="svc_1"),
            "nixpacks build /b/dep_1/src/web --out /b/dep_1/src/web --cache-key svc_1"
            " --env 'NIXPACKS_BUILD_CMD=npm run build:prod' --env NIXPACKS_NODE_VERSION=20",
            id="dockerfile-with-variables",
        ),
    ],
)
def test_commands(command: Command, argv: str) -> None:
    assert shlex.join(command.argv) == argv
    assert (command.env, command.stdin) == ({}, None)


def test_the_dockerfile_is_read_from_the_out_directory() -> None:
    assert generated_dockerfile(SOURCE) == SOURCE / ".nixpacks" / "Dockerfile"


@pytest.mark.parametrize(
    "binary",
    [
        pytest.param("nixpacks", id="name-not-on-path"),
        pytest.param("/nonexistent/bin/nixpacks", id="absolute-path-missing"),
    ],
)
def test_a_missing_binary_names_the_setting_and_the_binary(tmp_path: Path, binary: str) -> None:
    with pytest.raises(NixpacksError) as caught:
        require_binary(binary, search_path=str(tmp_path))  # an empty directory as the whole PATH

    assert str(caught.value) == (
        f"DOCKYARD_BUILD_PLANNER=nixpacks, but the nixpacks binary {binary!r}"
        " (DOCKYARD_BUILD_NIXPACKS_BINARY) is not on this builder's PATH:"
        " install nixpacks on the builder, or set DOCKYARD_BUILD_PLANNER=dockyard"
    )


def test_a_file_that_is_not_executable_is_not_the_binary(tmp_path: Path) -> None:
    (tmp_path / "nixpacks").write_text("")  # mode 644

    with pytest.raises(NixpacksError, match="is not on this builder's PATH"):
        require_binary("nixpacks", search_path=str(tmp_path))


PLAN_JSON = """{
  "providers": [],
  "buildImage": "ghcr.io/railwayapp/nixpacks:ubuntu-1716249803",
  "variables": {"NIXPACKS_METADATA": "node", "NODE_ENV": "production"},
  "phases": {"setup": {"name": "setup", "nixPkgs": ["nodejs_18", "npm-9_x"]}},
  "start": {"cmd": "npm run start"}
}
"""


@pytest.mark.parametrize(
    "stdout",
    [
        pytest.param(PLAN_JSON, id="plan-alone"),
        pytest.param(
            "\n Nixpacks file based configuration is experimental and may change\n\n" + PLAN_JSON,
            id="after-a-notice-on-stdout",
        ),
    ],
)
def test_parse_plan(stdout: str) -> None:
    plan = parse_plan(stdout)

    assert plan["start"] == {"cmd": "npm run start"}
    assert plan_variables(plan) == {"NIXPACKS_METADATA": "node", "NODE_ENV": "production"}


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        pytest.param("", "nixpacks plan printed no JSON plan: no output", id="empty"),
        pytest.param("Error: no start command\n", "no JSON plan: Error: no start command", id="no-json"),
        pytest.param('{"providers": [\n', "nixpacks plan printed invalid JSON", id="cut-short"),
        pytest.param('["a list"]\n', "printed no JSON plan", id="not-an-object"),
    ],
)
def test_unreadable_plans(stdout: str, message: str) -> None:
    with pytest.raises(NixpacksError, match=message):
        parse_plan(stdout)


@pytest.mark.parametrize(
    ("plan", "variables"),
    [
        pytest.param({}, {}, id="none"),
        pytest.param({"variables": {"PORT": 8080}}, {"PORT": "8080"}, id="values-as-text"),
    ],
)
def test_plan_variables(plan: dict[str, object], variables: dict[str, str]) -> None:
    assert plan_variables(plan) == variables


def test_plan_variables_must_be_an_object() -> None:
    with pytest.raises(NixpacksError, match="variables is not an object"):
        plan_variables({"variables": ["NODE_ENV"]})


GENERATED = """\
FROM ghcr.io/railwayapp/nixpacks:ubuntu-1716249803

WORKDIR /app/

COPY .nixpacks/nixpkgs-5148520b.nix .nixpacks/nixpkgs-5148520b.nix
RUN nix-env -if .nixpacks/nixpkgs-5148520b.nix && nix-collect-garbage -d

ARG GREETING NIXPACKS_METADATA NODE_ENV
ENV GREETING=$GREETING NIXPACKS_METADATA=$NIXPACKS_METADATA NODE_ENV=$NODE_ENV

# install phase
COPY . /app/.
RUN --mount=type=cache,id=svc_1-/root/npm,target=/root/.npm npm ci

# start
COPY . /app
CMD ["npm run start"]
"""


def test_the_plan_variables_become_arg_defaults() -> None:
    variables = {"GREETING": 'say "hi" for $5 \\o/', "NIXPACKS_METADATA": "node", "NODE_ENV": "production"}

    pinned = pin_build_args(GENERATED, variables)

    assert pinned == GENERATED.replace(
        "ARG GREETING NIXPACKS_METADATA NODE_ENV\n",
        'ARG GREETING="say \\"hi\\" for \\$5 \\\\o/"\n'
        'ARG NIXPACKS_METADATA="node"\n'
        'ARG NODE_ENV="production"\n',
    )


def test_args_that_are_not_plan_variables_are_left_alone() -> None:
    dockerfile = "FROM base\nARG BUILDKIT_INLINE_CACHE\nARG NODE_ENV OTHER\nARG TAG=v1\n"

    assert pin_build_args(dockerfile, {"NODE_ENV": "production"}) == (
        'FROM base\nARG BUILDKIT_INLINE_CACHE\nARG NODE_ENV="production"\nARG OTHER\nARG TAG=v1\n'
    )


def test_a_multi_line_value_cannot_be_baked_in() -> None:
    with pytest.raises(NixpacksError, match=r"^variables\.NODE_ENV: a value baked into the image must be"):
        pin_build_args(GENERATED, {"NODE_ENV": "a\nb"})
