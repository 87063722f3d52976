"""The real `nixpacks` CLI as data, for builders with DOCKYARD_BUILD_PLANNER=nixpacks: the command lines
that plan a source directory and write its Dockerfile, and how their output is read back. Pure, but for
the PATH lookup of `require_binary`; activities/sources.py runs the commands.

    plan_command("nixpacks", Path("/b/src"), {"NIXPACKS_NODE_VERSION": "20"})
    # nixpacks plan /b/src --format json --env NIXPACKS_NODE_VERSION=20
    dockerfile_command("nixpacks", Path("/b/src"), {}, cache_key="svc_1")
    # nixpacks build /b/src --out /b/src --cache-key svc_1   (writes /b/src/.nixpacks/Dockerfile)

`nixpacks build --out DIR` writes the Dockerfile, the Nix files and static assets to DIR/.nixpacks/ and does
not copy the app: its Dockerfile expects DIR to be the build context, holding both the app (`COPY . /app`)
and `.nixpacks/`. So DIR is the source directory itself (what `nixpacks build --current-dir` does).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from core.build import Command

OUTPUT_DIR = ".nixpacks"
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class NixpacksError(Exception):
    """nixpacks is missing, failed, or printed something unreadable; the message says which."""


def _env_args(env: Mapping[str, str]) -> list[str]:
    # Hazard: `--env NAME=` (an empty value) makes nixpacks read NAME from its own environment, which holds
    # only PATH here: the variable ends up unset.
    return [arg for name, value in sorted(env.items()) for arg in ("--env", f"{name}={value}")]


def plan_command(binary: str, source: Path, env: Mapping[str, str]) -> Command:
    """`nixpacks plan`: the build plan as JSON on stdout (warnings may come before it)."""
    return Command([binary, "plan", str(source), "--format", "json", *_env_args(env)])


def dockerfile_command(binary: str, source: Path, env: Mapping[str, str], cache_key: str) -> Command:
    """`nixpacks build --out`: writes <source>/.nixpacks/Dockerfile instead of building. The cache key
    names the Dockerfile's cache mounts (the service id: one service's caches are its own)."""
    argv = [binary, "build", str(source), "--out", str(source), "--cache-key", cache_key]
    return Command([*argv, *_env_args(env)])


def generated_dockerfile(source: Path) -> Path:
    return source / OUTPUT_DIR / "Dockerfile"


def require_binary(binary: str, search_path: str | None = None) -> str:
    """The path of the nixpacks executable; `search_path` is a PATH value (None: this process's PATH)."""
    found = shutil.which(binary, path=search_path)
    if found is None:
        raise NixpacksError(
            f"DOCKYARD_BUILD_PLANNER=nixpacks, but the nixpacks binary {binary!r} "
            "(DOCKYARD_BUILD_NIXPACKS_BINARY) is not on this builder's PATH: install nixpacks on the "
            "builder, or set DOCKYARD_BUILD_PLANNER=dockyard"
        )
    return found


def parse_plan(stdout: str) -> dict[str, object]:
    """The JSON object `nixpacks plan` printed. Some notices ("... is experimental") go to stdout too,
    before the plan, so the plan is the first line that opens a JSON object."""
    lines = stdout.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith("{"):
            try:
                plan = json.loads("".join(lines[index:]))
            except json.JSONDecodeError as exc:
                raise NixpacksError(f"nixpacks plan printed invalid JSON: {exc}") from None
            if isinstance(plan, dict):
                return plan
    first = stdout.strip().splitlines()[:1] or ["no output"]
    raise NixpacksError(f"nixpacks plan printed no JSON plan: {first[0]}")


def plan_variables(plan: Mapping[str, object]) -> dict[str, str]:
    variables = plan.get("variables") or {}
    if not isinstance(variables, dict):
        raise NixpacksError("nixpacks plan: variables is not an object")
    return {str(name): str(value) for name, value in variables.items()}


def pin_build_args(dockerfile: str, variables: Mapping[str, str]) -> str:
    """nixpacks declares the plan's variables as `ARG A B` + `ENV A=$A B=$B` and passes their values with
    `docker build --build-arg`. Dockyard's build request carries the Dockerfile alone, so each such ARG
    gets its value as its default instead: the same image (nixpacks bakes them in with ENV either way)."""
    lines = []
    for line in dockerfile.splitlines():
        words = line.split()
        if not words or words[0].upper() != "ARG" or not any(word in variables for word in words[1:]):
            lines.append(line)
            continue
        lines += [
            f"ARG {word}={_dockerfile_value(word, variables[word])}" if word in variables else f"ARG {word}"
            for word in words[1:]
        ]
    return "\n".join(lines) + "\n"


def _dockerfile_value(name: str, value: str) -> str:
    if not _ARG_NAME.match(name):
        raise NixpacksError(f"variables.{name}: not a valid build argument name (letters, digits, _)")
    if "\n" in value or "\r" in value:
        raise NixpacksError(f"variables.{name}: a value baked into the image must be a single line")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def last_lines(output: str, count: int = 10) -> str:
    """The end of a failed nixpacks run's output, for the error a user sees."""
    lines = [line for line in output.splitlines() if line.strip()]
    return "\n".join(lines[-count:]) or "no output"
