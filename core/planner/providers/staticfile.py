"""Static sites: a Staticfile, index.html, public/, dist/ or index/, served by Caddy."""

from __future__ import annotations

import re

from core.planner.environment import PlanEnv
from core.planner.layers import PlanLayer, StartLayer
from core.planner.providers import base, caddy
from core.planner.source import SourceTree


def staticfile_settings(app: SourceTree) -> dict[str, str]:
    """The `key: value` lines of a Staticfile (root, directory)."""
    settings = {}
    for line in app.read_text("Staticfile").splitlines():
        if match := re.match(r"\s*([\w-]+)\s*:\s*(.*?)\s*$", line):
            settings[match.group(1)] = match.group(2).strip("'\"")
    return settings


def site_root(app: SourceTree, env: PlanEnv, settings: dict[str, str]) -> str:
    """NIXPACKS_STATICFILE_ROOT > Staticfile root > public/ > dist/ > index/ > the repository root."""
    configured = env.config("STATICFILE_ROOT") or settings.get("root")
    if configured:
        return configured.strip("/")
    return next((name for name in ("public", "dist", "index") if app.has_dir(name)), "")


class StaticfileProvider:
    name = "staticfile"
    detects = "Staticfile, index.html, public/, dist/ or index/ (static site)"
    starts = "Caddy serving the site's root"

    def detect(self, app: SourceTree, env: PlanEnv) -> bool:
        return (
            app.has_file("Staticfile")
            or app.has_file("index.html")
            or any(app.has_dir(name) for name in ("public", "dist", "index"))
        )

    def plan(self, app: SourceTree, env: PlanEnv) -> PlanLayer:
        settings = staticfile_settings(app)
        root = site_root(app, env, settings)
        layer = PlanLayer()
        layer.phases["setup"] = base.setup(["caddy"])
        browse = settings.get("directory") == "visible"
        layer.static_assets[caddy.CADDYFILE] = caddy.caddyfile(f"/app/{root}".rstrip("/"), browse=browse)
        layer.start = StartLayer(cmd=caddy.START_CMD)
        return layer
