"""nixpacks.toml / nixpacks.json: a partial plan written by the user (the Nixpacks file format).

Dockyard builds without Nix, so Nix-only keys (`nixPkgs`, `nixLibs`, ...) are refused with a pointer to
`aptPkgs`, except for the harmless `["..."]`.
"""

from __future__ import annotations

from typing import Any

from core.planner.checks import Checker
from core.planner.environment import PlanEnv
from core.planner.errors import ConfigError
from core.planner.layers import AUTO_MARKERS, PhaseLayer, PlanLayer, StartLayer
from core.planner.source import SourceTree

NIXPACKS_FILES = ("nixpacks.toml", "nixpacks.json")
TOP_KEYS = ("$schema", "providers", "buildImage", "variables", "staticAssets", "phases", "start")
PHASE_KEYS = {  # file key -> PhaseLayer field (aliases as Nixpacks accepts them)
    "dependsOn": "depends_on",
    "cmds": "cmds",
    "commands": "cmds",
    "aptPkgs": "apt_pkgs",
    "aptPackages": "apt_pkgs",
    "cacheDirectories": "cache_directories",
    "paths": "paths",
    "envPaths": "paths",
    "onlyIncludeFiles": "only_include_files",
}
NIX_KEYS = ("nixPkgs", "nixPackages", "nixLibs", "nixLibraries", "nixOverlays", "nixpkgsArchive")
START_KEYS = ("cmd", "runImage", "onlyIncludeFiles")


def nixpacks_file(app: SourceTree, env: PlanEnv, configured: str | None = None) -> str | None:
    """NIXPACKS_CONFIG_FILE, else a path configured in railway/dockyard files, else nixpacks.toml/.json."""
    explicit = env.config("CONFIG_FILE") or configured
    if explicit:
        if not app.has_file(explicit):
            source = "NIXPACKS_CONFIG_FILE" if env.config("CONFIG_FILE") else "build.nixpacksConfigPath"
            raise ConfigError(
                explicit, "", f"not found (named by {source}); fix the path or remove the setting"
            )
        return explicit
    return next((name for name in NIXPACKS_FILES if app.has_file(name)), None)


def read_nixpacks_file(app: SourceTree, name: str) -> PlanLayer:
    if name.endswith(".toml"):
        data: Any = app.read_toml(name)
    elif name.endswith(".json"):
        data = app.read_json(name)
    else:
        raise ConfigError(name, "", "unknown config file type; use a .toml or .json file")
    check = Checker(name)
    return parse_nixpacks_plan(check, check.table("", data) if data is not None else {}, prefix="")


def parse_nixpacks_plan(check: Checker, data: dict[str, Any], prefix: str) -> PlanLayer:
    """A plan in the Nixpacks file format; `prefix` places its keys inside a larger file (railway.json)."""

    def key(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    check.known_keys(prefix, data, TOP_KEYS)
    layer = PlanLayer()
    if "providers" in data:
        layer.providers = check.strings(key("providers"), data["providers"])
    if "buildImage" in data:
        layer.build_image = check.string(key("buildImage"), data["buildImage"])
    for name, value in check.table(key("variables"), data.get("variables", {})).items():
        layer.variables[name] = check.scalar(key(f"variables.{name}"), value)
    for name, value in check.table(key("staticAssets"), data.get("staticAssets", {})).items():
        if not isinstance(value, str):
            raise check.fail(key(f"staticAssets.{name}"), "expected the file's contents as a string")
        layer.static_assets[name] = value
    for name, table in check.table(key("phases"), data.get("phases", {})).items():
        layer.phases[name] = _phase(check, key(f"phases.{name}"), check.table(key(f"phases.{name}"), table))
    layer.start = _start(check, key("start"), check.table(key("start"), data.get("start", {})))
    return layer


def _phase(check: Checker, key: str, table: dict[str, Any]) -> PhaseLayer:
    check.known_keys(key, table, [*PHASE_KEYS, *NIX_KEYS, "name"])
    phase = PhaseLayer()
    for file_key, value in table.items():
        if file_key in NIX_KEYS:
            _refuse_nix(check, f"{key}.{file_key}", value)
        elif file_key in PHASE_KEYS:
            setattr(phase, PHASE_KEYS[file_key], check.strings(f"{key}.{file_key}", value))
    return phase


def _refuse_nix(check: Checker, key: str, value: Any) -> None:
    if isinstance(value, list) and all(item in AUTO_MARKERS for item in value):
        return
    raise check.fail(
        key, "Nix is not available in Dockyard's builder; list Debian packages in aptPkgs instead"
    )


def _start(check: Checker, key: str, table: dict[str, Any]) -> StartLayer:
    check.known_keys(key, table, START_KEYS)
    start = StartLayer()
    if "cmd" in table:
        start.cmd = check.string(f"{key}.cmd", table["cmd"])
    if "runImage" in table:
        start.run_image = check.string(f"{key}.runImage", table["runImage"])
    if "onlyIncludeFiles" in table:
        start.only_include_files = check.strings(f"{key}.onlyIncludeFiles", table["onlyIncludeFiles"])
    return start
