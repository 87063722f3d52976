"""Render a build plan as a Dockerfile: commands are data, asserted exactly in tests.

Layout: base image → variables → static assets → each phase in dependency order → CMD. A phase copies only
its `onlyIncludeFiles` (the dependency manifests) before running, so dependency installation stays cached
while only application code changes; the whole tree is copied once, before the first phase that needs it.
Package caches are BuildKit cache mounts (Docker 20.10's built-in frontend: no `# syntax` line, no pull).
"""

from __future__ import annotations

import base64
import json
import re

from core.planner.errors import PlanError
from core.planner.layers import default_depends_on
from core.planner.model import BaseImages, BuildPlan, Phase
from core.planner.shell import start_script
from core.planner.versions import RUNTIMES

DEFAULT_PORT = "8080"
_TRUTHY = ("1", "true", "yes", "on")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def ordered_phases(plan: BuildPlan) -> list[Phase]:
    """Phases after the phases they depend on; ties in name order. A dependency on an absent conventional
    phase stands for that phase's own dependencies: a build command given to a provider with no install
    phase (a static site, say) depends on `install`, so it runs after `setup` and its packages, not before
    it because "build" sorts first. Other unknown dependencies are ignored."""
    pending = {name: _present_dependencies(plan, phase) for name, phase in plan.phases.items()}
    ordered: list[Phase] = []
    while pending:
        ready = sorted(name for name, deps in pending.items() if not deps)
        if not ready:
            raise PlanError(
                f"phases: dependency cycle between {', '.join(sorted(pending))}; fix their dependsOn"
            )
        for name in ready:
            ordered.append(plan.phases[name])
            del pending[name]
        for deps in pending.values():
            deps.difference_update(ready)
    return ordered


def _present_dependencies(plan: BuildPlan, phase: Phase) -> set[str]:
    present: set[str] = set()
    queue, seen = list(phase.depends_on), set()
    while queue:
        dep = queue.pop()
        if dep in seen or dep == phase.name:
            continue
        seen.add(dep)
        if dep in plan.phases:
            present.add(dep)
        else:
            queue.extend(default_depends_on(dep) or [])
    return present


def render_dockerfile(
    plan: BuildPlan, base_images: BaseImages, *, cache_key: str | None = None, cache_mounts: bool = True
) -> str:
    """The Dockerfile for `plan` on the configured base image of its provider.

    `cache_key` (or the plan's NIXPACKS_CACHE_KEY) namespaces caches of app folders (`node_modules/.cache`,
    `target`) so services sharing a builder never share them; package caches under /root are shared.
    `cache_mounts=False` (or NIXPACKS_NO_CACHE=1) leaves out `RUN --mount`, for builders without BuildKit.
    """
    if not plan.start.cmd:
        raise PlanError("the plan has no start command; set NIXPACKS_START_CMD or deploy.startCommand")
    mounts = cache_mounts and plan.variables.get("NIXPACKS_NO_CACHE", "").lower() not in _TRUTHY
    key = cache_key or plan.variables.get("NIXPACKS_CACHE_KEY")
    env_lines = _env_lines(plan)
    stage = " AS build" if plan.start.run_image else ""
    lines = [
        f"FROM {_base_image(plan, base_images)}{stage}",
        "WORKDIR /app",
        *env_lines,
        *_version_notes(plan),
    ]
    assets = _static_assets(plan)  # after the setup phase: they rarely change, the runtime even less
    copied_all = False
    for phase in ordered_phases(plan):
        if phase.name != "setup":
            lines, assets = lines + assets, []
        if phase.cmds or phase.apt_pkgs or phase.paths:
            lines += [
                "",
                f"# {phase.name}",
                *_phase(phase, copied_all, _mounts(phase, key) if mounts else ""),
            ]
            copied_all = copied_all or bool(phase.cmds and phase.only_include_files is None)
            env_lines += [line for line in lines[-1:] if line.startswith("ENV PATH=")]
    lines += assets
    if not copied_all:
        lines += ["", "COPY . ./"]
    if plan.start.run_image:
        lines += ["", f"FROM {plan.start.run_image}", "WORKDIR /app", *env_lines]
        lines += _copy_from_build(plan.start.only_include_files)
    lines += ["", f"CMD {json.dumps(['/bin/sh', '-c', start_script(plan.start.cmd)])}", ""]
    return "\n".join(lines)


def _base_image(plan: BuildPlan, base_images: BaseImages) -> str:
    """The configured image for the plan's provider, unless the plan names another one (`buildImage`)."""
    provider = plan.providers[0] if plan.providers else None
    if plan.build_image == BaseImages().for_provider(provider):
        return base_images.for_provider(provider)
    return plan.build_image


def _phase(phase: Phase, copied_all: bool, mounts: str) -> list[str]:
    """Packages, then the files the commands need (unless the whole tree is there), the commands, PATH."""
    lines = [_apt_install(phase.apt_pkgs)] if phase.apt_pkgs else []
    if phase.cmds and not copied_all:
        lines += ["COPY . ./"] if phase.only_include_files is None else _copy_files(phase.only_include_files)
    lines += [f"RUN {mounts}{cmd}" for cmd in phase.cmds]
    if phase.paths:
        lines.append(f'ENV PATH="{":".join(phase.paths)}:$PATH"')
    return lines


def _env_lines(plan: BuildPlan) -> list[str]:
    variables = {"PORT": DEFAULT_PORT, **dict(sorted(plan.variables.items()))}
    for name, value in variables.items():
        if not _ENV_NAME.match(name):
            raise PlanError(f"variables.{name}: not a valid environment variable name (letters, digits, _)")
        if "\n" in value:
            raise PlanError(f"variables.{name}: a value baked into the image must be a single line")
    return [f"ENV {name}={_env_value(value)}" for name, value in variables.items()]


def _env_value(value: str) -> str:
    if value and re.fullmatch(r"[\w./:@%+,-]+", value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _version_notes(plan: BuildPlan) -> list[str]:
    notes = []
    for runtime in RUNTIMES.values():
        requested = plan.variables.get(runtime.variable)
        if requested and not runtime.honoured(requested):
            notes.append(
                f"# {runtime.variable}={requested} cannot be honoured exactly: Debian bookworm packages "
                f"{runtime.label} {runtime.debian_text}, installed below unless the base image has it."
            )
    return notes


def _static_assets(plan: BuildPlan) -> list[str]:
    lines = []
    for name, content in (plan.static_assets or {}).items():
        if name.startswith("/") or ".." in name.split("/") or not re.fullmatch(r"[\w./-]+", name):
            raise PlanError(
                f"staticAssets.{name}: an asset name must be a relative path of letters, digits, . _ -"
            )
        encoded = base64.b64encode(content.encode()).decode()
        folder = f"/assets/{name}".rpartition("/")[0]
        lines.append(f"RUN mkdir -p {folder} && echo {encoded} | base64 -d > /assets/{name}")
    return ["", "# static assets", *lines] if lines else []


def _apt_install(packages: list[str]) -> str:
    names = " ".join(packages)
    return (
        f"RUN if ! dpkg -s {names} >/dev/null 2>&1; then \\\n"
        "      apt-get update \\\n"
        f"      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {names} \\\n"
        "      && rm -rf /var/lib/apt/lists/*; \\\n"
        "    fi"
    )


def _copy_files(files: list[str]) -> list[str]:
    """Directories (ending in /) one by one; files grouped by the folder they live in."""
    by_folder: dict[str, list[str]] = {}
    lines = []
    for name in files:
        if name.endswith("/"):
            lines.append(_copy([name], name))
        else:
            folder = name.rpartition("/")[0]
            by_folder.setdefault(f"{folder}/" if folder else "./", []).append(name)
    return [_copy(names, folder) for folder, names in by_folder.items()] + lines


def _copy(sources: list[str], destination: str) -> str:
    words = [*sources, destination]
    if any(re.search(r"[\s\"'\\$]", word) for word in words):
        return f"COPY {json.dumps(words)}"
    return f"COPY {' '.join(words)}"


def _copy_from_build(files: list[str] | None) -> list[str]:
    if files is None:
        return ["COPY --from=build /app /app"]
    paths = [f"/app/{name.removeprefix('./')}" for name in files]
    return [f"COPY --from=build {path} {path}" for path in paths]


def _mounts(phase: Phase, key: str | None) -> str:
    mounts = []
    for directory in phase.cache_directories:
        target = directory if directory.startswith("/") else f"/app/{directory}"
        cache_id = f"id={key}-{_slug(directory)}," if key and not directory.startswith("/") else ""
        mounts.append(f"--mount=type=cache,{cache_id}target={target} ")
    return "".join(mounts)


def _slug(directory: str) -> str:
    return re.sub(r"[^\w.-]+", "-", directory).strip("-")
