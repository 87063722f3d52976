"""The service's variables as the planner sees them: `NIXPACKS_*` settings and the layer they make."""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.planner.errors import ConfigError
from core.planner.layers import PlanLayer, StartLayer

PREFIX = "NIXPACKS_"
NIX_ONLY = ("PKGS", "LIBS")


class PlanEnv:
    """Variables with Nixpacks' lookup rules: `config("BUILD_CMD")` reads NIXPACKS_BUILD_CMD."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self.variables = dict(variables)

    def get(self, name: str) -> str | None:
        value = self.variables.get(name)
        return value if value and value.strip() else None

    def config(self, name: str) -> str | None:
        return self.get(PREFIX + name)

    def truthy(self, name: str) -> bool:
        return (self.config(name) or "").strip().lower() in ("1", "true", "yes", "on")

    def nixpacks_variables(self) -> dict[str, str]:
        """Only NIXPACKS_* variables enter the plan (and the image); the rest are runtime variables."""
        return {key: value for key, value in self.variables.items() if key.startswith(PREFIX)}

    def overlaid(self, lower: Mapping[str, str]) -> PlanEnv:
        """These variables over `lower` (nixpacks.toml [variables] are visible to providers, env wins)."""
        return PlanEnv({**lower, **self.variables})


def split_list(text: str) -> list[str]:
    return [item for item in re.split(r"[\s,]+", text) if item]


def env_layer(env: PlanEnv) -> PlanLayer:
    """NIXPACKS_* overrides, Nixpacks' `BuildPlan::from_environment` without the Nix parts."""
    for name in NIX_ONLY:
        if env.config(name):
            raise ConfigError(
                "environment",
                PREFIX + name,
                "Nix packages are not supported by Dockyard's builder; "
                "list Debian packages in NIXPACKS_APT_PKGS instead",
            )
    layer = PlanLayer(variables=env.nixpacks_variables())
    if apt := env.config("APT_PKGS"):
        layer.phase("setup").apt_pkgs = [*split_list(apt), "..."]
    if install := env.config("INSTALL_CMD"):
        phase = layer.phase("install")
        phase.cmds = [install]
        if dirs := env.config("INSTALL_CACHE_DIRS"):
            phase.cache_directories = ["...", *split_list(dirs)]
    if build := env.config("BUILD_CMD"):
        phase = layer.phase("build")
        phase.cmds = [build]
        if dirs := env.config("BUILD_CACHE_DIRS"):
            phase.cache_directories = ["...", *split_list(dirs)]
    layer.start = StartLayer(cmd=env.config("START_CMD"))
    return layer
