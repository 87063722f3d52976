"""Go: modules (go.mod) or a lone main.go, built into ./out."""

from __future__ import annotations

import re

from core.planner.environment import PlanEnv
from core.planner.layers import PlanLayer, StartLayer
from core.planner.providers import base
from core.planner.source import SourceTree

BINARY = "out"
BUILD_CACHE = "/root/.cache/go-build"


def go_version(app: SourceTree, env: PlanEnv) -> str:
    """NIXPACKS_GO_VERSION > the `go` line of go.mod > Debian bookworm's 1.19."""
    if configured := env.config("GO_VERSION"):
        return configured
    match = re.search(r"^\s*go\s+(\d+\.\d+)", app.read_text("go.mod"), re.M)
    return match.group(1) if match else "1.19"


def build_cmd(app: SourceTree, env: PlanEnv) -> str | None:
    """NIXPACKS_GO_BIN > the module root with .go files > the first cmd/<name> > the module > main.go."""
    module = app.has_file("go.mod")
    if name := env.config("GO_BIN"):
        return f"go build -o {BINARY} ./cmd/{name}"
    if module and any("/" not in name for name in app.glob("*.go")):
        return f"go build -o {BINARY}"
    if commands := app.subdirs("cmd"):
        return f"go build -o {BINARY} ./cmd/{commands[0]}"
    if module:
        return f"go build -o {BINARY}"
    if app.has_file("main.go"):
        return f"go build -o {BINARY} main.go"
    return None


class GoProvider:
    name = "go"
    detects = "go.mod or main.go (Go)"
    starts = "the binary built from the module root, cmd/<name> or main.go"

    def detect(self, app: SourceTree, env: PlanEnv) -> bool:
        return app.has_file("go.mod") or app.has_file("main.go")

    def plan(self, app: SourceTree, env: PlanEnv) -> PlanLayer:
        layer = PlanLayer(variables={"CGO_ENABLED": "0", "NIXPACKS_GO_VERSION": go_version(app, env)})
        layer.phases["setup"] = base.setup(["golang-go", base.APT_CA])
        if app.has_file("go.mod"):
            files = app.existing("go.mod", "go.sum")
            layer.phases["install"] = base.install(["go mod download"], files)
        command = build_cmd(app, env)
        build = base.build([command] if command else [], [BUILD_CACHE])
        build.depends_on = ["install", "setup"]
        layer.phases["build"] = build
        if command and app.glob("*.go"):
            layer.start = StartLayer(cmd=f"./{BINARY}")
        return layer
