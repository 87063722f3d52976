"""Deno: deno.json(c) projects or TypeScript/JavaScript importing from deno.land; Deno comes from npm."""

from __future__ import annotations

import re
from typing import Any

from core.planner.environment import PlanEnv
from core.planner.layers import PlanLayer, StartLayer
from core.planner.providers import base
from core.planner.source import SourceTree

DENO_IMPORT = re.compile(r"""import .+ from ["'`]https://deno\.land/[^"'`]+\.(?:ts|js|tsx|jsx)["'`];?""")
SOURCE_FILES = ("*.ts", "*.tsx", "*.js", "*.jsx")
CONFIGS = ("deno.json", "deno.jsonc")


def deno_config(app: SourceTree) -> dict[str, Any]:
    for name in CONFIGS:
        if app.has_file(name):
            data = app.read_jsonc(name)
            return data if isinstance(data, dict) else {}
    return {}


def start_file(app: SourceTree) -> str | None:
    """The first index.{ts,tsx,js,jsx}, shallowest first."""
    found = [name for pattern in SOURCE_FILES for name in app.glob(pattern.replace("*", "*index", 1))]
    found = [name for name in found if name.rpartition("/")[2].startswith("index.")]
    return min(found, key=lambda name: (name.count("/"), name)) if found else None


class DenoProvider:
    name = "deno"
    detects = "deno.json, deno.jsonc or imports from deno.land (Deno)"
    starts = "tasks.start in deno.json, or index.ts/index.js"

    def detect(self, app: SourceTree, env: PlanEnv) -> bool:
        if app.existing(*CONFIGS):
            return True
        return any(app.search(DENO_IMPORT, pattern) for pattern in SOURCE_FILES)

    def plan(self, app: SourceTree, env: PlanEnv) -> PlanLayer:
        version = env.config("DENO_VERSION") or "2"
        layer = PlanLayer(variables={"NIXPACKS_DENO_VERSION": version})
        layer.phases["setup"] = base.setup(["nodejs", "npm"], [f"npm install -g deno@{version}"])
        entry = start_file(app)
        build = base.build([f"deno cache {base.shell_word(entry)}"] if entry else [])
        build.depends_on = ["setup"]
        layer.phases["build"] = build
        tasks = deno_config(app).get("tasks")
        task_start = tasks.get("start") if isinstance(tasks, dict) else None
        if isinstance(task_start, str) and task_start.strip():
            layer.start = StartLayer(cmd=task_start)
        elif entry:
            layer.start = StartLayer(cmd=f"deno run --allow-all {base.shell_word(entry)}")
        return layer
