"""Vite single-page apps: built by the Node provider, then served statically instead of by a start script."""

from __future__ import annotations

import re

from core.planner.environment import PlanEnv
from core.planner.layers import PlanLayer, StartLayer
from core.planner.providers import base, caddy
from core.planner.source import SourceTree

VITE_CONFIGS = ("vite.config.js", "vite.config.ts", "vite.config.mjs", "vite.config.mts")
# Frameworks built with Vite that render on a server: never served as static files.
SERVER_FRAMEWORKS = ("@sveltejs/kit", "nuxt", "@remix-run/dev", "@react-router/dev", "astro")


def is_vite(app: SourceTree, dependencies: set[str], scripts: dict[str, str]) -> bool:
    return (
        "vite" in dependencies
        or bool(app.existing(*VITE_CONFIGS))
        or "vite build" in scripts.get("build", "").lower()
    )


def output_directory(app: SourceTree, env: PlanEnv, scripts: dict[str, str]) -> str:
    """NIXPACKS_SPA_OUT_DIR > build.outDir in the Vite config > `vite build --outDir X` > dist."""
    if configured := env.config("SPA_OUT_DIR"):
        return configured
    for name in app.existing(*VITE_CONFIGS):
        if match := re.search(r"""outDir:\s*['"`](.*?)['"`]""", app.read_text(name)):
            return match.group(1)
    if match := re.search(r"vite\s+build(?:\s+-[^\s]*)*\s+--outDir\s+([^-\s;]+)", scripts.get("build", "")):
        return match.group(1)
    return "dist"


def spa_layer(
    app: SourceTree, env: PlanEnv, dependencies: set[str], scripts: dict[str, str]
) -> PlanLayer | None:
    """A Vite app without a start script is an SPA (unless NIXPACKS_SPA_CADDY=false or it is SSR)."""
    spa_off = (env.config("SPA_CADDY") or "").lower() in ("false", "0")
    if spa_off or "start" in scripts or not is_vite(app, dependencies, scripts):
        return None
    if any(framework in dependencies for framework in SERVER_FRAMEWORKS):
        return None
    out_dir = output_directory(app, env, scripts).strip("/")
    layer = PlanLayer(variables={"NIXPACKS_SPA_OUTPUT_DIR": out_dir})
    layer.phases["setup"] = base.setup(["caddy"])
    layer.static_assets[caddy.CADDYFILE] = caddy.caddyfile(f"/app/{out_dir}", spa=True)
    layer.start = StartLayer(cmd=caddy.START_CMD)
    return layer
