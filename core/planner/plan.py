"""The planner's entry points: choose a builder, plan a build, read the deploy keys.

A plan is the merge of layers, lowest first: the detected provider's defaults, the Procfile,
nixpacks.toml/json, railway.toml/json, dockyard.toml, then the service's NIXPACKS_* variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from core.planner.dockerfile import ordered_phases
from core.planner.environment import PlanEnv, env_layer
from core.planner.errors import ConfigError, PlanError
from core.planner.layers import AUTO_MARKERS, PlanLayer, fill_auto, merge, merge_all, pin, prefix_phases
from core.planner.model import BaseImages, BuildPlan, DeployConfig
from core.planner.nixpacks_config import nixpacks_file, read_nixpacks_file
from core.planner.providers import BY_NAME, PROVIDERS
from core.planner.providers.procfile import procfile_layer
from core.planner.service_config import ServiceConfig, merged_deploy, read_dockyard, read_railway
from core.planner.source import SourceTree

NO_VARIABLES: Mapping[str, str] = MappingProxyType({})
Builder = Literal["dockerfile", "image", "planner"]


def plan_build(source: Path, env: Mapping[str, str] = NO_VARIABLES) -> BuildPlan:
    """The build plan for the repository at `source`; `env` is the service's variables."""
    app = SourceTree(source)
    given = PlanEnv(env)
    railway, dockyard = read_railway(app), read_dockyard(app)
    configured = _first(config.build.nixpacks_config_path for config in (dockyard, railway) if config)
    file_name = nixpacks_file(app, given, configured)
    file_layer = read_nixpacks_file(app, file_name) if file_name else PlanLayer()
    plan_env = given.overlaid(file_layer.variables)
    providers = resolve_providers(app, plan_env, file_layer.providers, file_name or "nixpacks.toml")
    layers = [
        provider_layers(app, plan_env, providers),
        procfile_layer(app),
        file_layer,
        *(config.layer() for config in (railway, dockyard) if config),
        env_layer(given),
    ]
    plan = pin(merge_all(layers), providers, BaseImages().for_provider(providers[0] if providers else None))
    ordered_phases(plan)  # a dependency cycle is a configuration error: report it now, not at build time
    if not plan.start.cmd:
        raise PlanError(_no_start_message(providers))
    return plan


def resolve_providers(app: SourceTree, env: PlanEnv, configured: list[str] | None, file: str) -> list[str]:
    """The detected provider, or the configured list ("..." stands for the detected one)."""
    detected = next(([p.name] for p in PROVIDERS if p.detect(app, env)), [])
    names = fill_auto(detected, configured if configured is not None else ["..."]) or []
    resolved = list(dict.fromkeys(name for name in names if name not in AUTO_MARKERS))
    for name in resolved:
        if name not in BY_NAME:
            raise ConfigError(
                file, "providers", f"unknown provider {name!r}; expected one of: {', '.join(BY_NAME)}"
            )
    return resolved


def provider_layers(app: SourceTree, env: PlanEnv, providers: list[str]) -> PlanLayer:
    """The first provider's phases as they are; later providers' phases prefixed `<name>:`.

    As in Nixpacks, earlier providers win where they overlap (start command, variables).
    """
    merged = PlanLayer()
    for index, name in enumerate(providers):
        layer = BY_NAME[name].plan(app, env)
        merged = merge(prefix_phases(layer, name) if index else layer, merged)
    return merged


def _first(values: Iterable[str | None]) -> str | None:
    return next((value for value in values if value), None)


START_HINTS = (
    "Set a start command with one of:\n"
    "  - the NIXPACKS_START_CMD service variable\n"
    "  - deploy.startCommand in railway.toml or railway.json\n"
    "  - deploy.start_command (or startCommand) in dockyard.toml\n"
    "  - [start] cmd in nixpacks.toml\n"
    "  - a `web:` line in a Procfile\n"
    "or add a Dockerfile."
)


def _no_start_message(providers: list[str]) -> str:
    if not providers:
        looked_for = "\n".join(f"  - {provider.detects}" for provider in PROVIDERS)
        return (
            "Could not detect how to build this repository. Looked for:\n"
            f"{looked_for}\n  - Procfile, nixpacks.toml, railway.toml, dockyard.toml, Dockerfile\n"
            f"{START_HINTS}"
        )
    provider = BY_NAME[providers[0]]
    return (
        f"Detected a {provider.name} app but found no start command (looked for {provider.starts}).\n"
        f"{START_HINTS}"
    )


def select_builder(source: Path, image: str | None, dockerfile_path: str | None) -> Builder:
    """Dockerfile (present, or configured) → "dockerfile"; else an image → "image"; else "planner"."""
    if image and not source.is_dir():
        return "image"
    app = SourceTree(source)
    configs = [config for config in (read_dockyard(app), read_railway(app)) if config]
    configured_path = dockerfile_path or _first(config.build.dockerfile_path for config in configs)
    builder = _first(config.build.builder for config in configs)
    if configured_path:
        if not app.has_file(configured_path):
            raise PlanError(
                f"{configured_path}: Dockerfile not found (configured as dockerfilePath); "
                "fix the path or remove the setting"
            )
        return "dockerfile"
    if builder == "dockerfile":
        if not app.has_file("Dockerfile"):
            raise PlanError(
                f"{_builder_file(configs)}: build.builder is DOCKERFILE but there is no Dockerfile at the "
                "repository root; add one or set build.dockerfilePath"
            )
        return "dockerfile"
    if builder != "planner" and app.has_file("Dockerfile"):
        return "dockerfile"
    return "image" if image else "planner"


def _builder_file(configs: list[ServiceConfig]) -> str:
    return next(config.file for config in configs if config.build.builder)


def read_deploy_config(source: Path) -> DeployConfig:
    """railway.toml/json deploy keys, overridden key by key by dockyard.toml's."""
    app = SourceTree(source)
    return merged_deploy(read_railway(app), read_dockyard(app))
