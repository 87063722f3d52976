"""Procfile: on top of any provider, the `web` process starts the app and `release` runs after the build."""

from __future__ import annotations

import re

from core.planner.layers import PhaseLayer, PlanLayer, StartLayer
from core.planner.source import SourceTree


def processes(app: SourceTree) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in app.read_text("Procfile").splitlines():
        if match := re.match(r"^([A-Za-z0-9_-]+)\s*:\s*(.+?)\s*$", line):
            found.setdefault(match.group(1), match.group(2))
    return found


def procfile_layer(app: SourceTree) -> PlanLayer:
    """Start: `web`, else `worker`, else the first process by name (Nixpacks' order)."""
    layer = PlanLayer()
    found = processes(app)
    release = found.pop("release", None)
    if release:
        layer.phases["release"] = PhaseLayer(depends_on=["setup", "install", "build"], cmds=["...", release])
    if found:
        name = "web" if "web" in found else "worker" if "worker" in found else sorted(found)[0]
        layer.start = StartLayer(cmd=found[name])
    return layer
