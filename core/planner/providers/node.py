"""Node.js and Bun: package.json apps installed with npm, yarn, pnpm or bun; Vite SPAs served statically."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.planner.environment import PlanEnv
from core.planner.errors import ConfigError
from core.planner.layers import PlanLayer, StartLayer
from core.planner.providers import base
from core.planner.providers.spa import spa_layer
from core.planner.source import SourceTree
from core.planner.versions import node_major

CACHE_DIRS = {
    "npm": "/root/.npm",
    "yarn": "/usr/local/share/.cache/yarn/v6",
    "pnpm": "/root/.local/share/pnpm/store/v3",
    "bun": "/root/.bun/install/cache",
}
LOCKFILES = (
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "bun.lock",
)
MANIFESTS = (
    "package.json",
    *LOCKFILES,
    "pnpm-workspace.yaml",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    "bunfig.toml",
    ".pnpmfile.cjs",
    ".yarn/releases",
    ".yarn/plugins",
    ".yarn/patches",
    "patches",
)
# Scripts npm runs during install: they may need any file, so the whole tree is copied first.
LIFECYCLE_SCRIPTS = ("preinstall", "install", "postinstall", "prepare")
NVMRC_ALIASES = {
    "lts/*": "22", "lts/jod": "22", "lts/iron": "20",
    "lts/hydrogen": "18", "lts/gallium": "16", "lts/fermium": "14",
}  # fmt: skip


@dataclass(frozen=True)
class PackageJson:
    data: dict[str, Any]

    @property
    def scripts(self) -> dict[str, str]:
        scripts = self.data.get("scripts")
        return {k: v for k, v in scripts.items() if isinstance(v, str)} if isinstance(scripts, dict) else {}

    @property
    def dependencies(self) -> set[str]:
        names: set[str] = set()
        for field in ("dependencies", "devDependencies"):
            if isinstance(self.data.get(field), dict):
                names.update(self.data[field])
        return names

    def text(self, field: str) -> str | None:
        value = self.data.get(field)
        return value if isinstance(value, str) and value.strip() else None

    @property
    def engines_node(self) -> str | None:
        engines = self.data.get("engines")
        return (
            engines.get("node")
            if isinstance(engines, dict) and isinstance(engines.get("node"), str)
            else None
        )

    @property
    def package_manager(self) -> tuple[str, str | None] | None:
        """`packageManager: "pnpm@9.1.0+sha..."` → ("pnpm", "9.1.0")."""
        text = self.text("packageManager")
        if not text:
            return None
        name, _, version = text.partition("@")
        return name, (version.split("+")[0] or None)


def read_package_json(app: SourceTree) -> PackageJson:
    data = app.read_json("package.json")
    if not isinstance(data, dict):
        raise ConfigError("package.json", "", "expected a JSON object")
    return PackageJson(data)


def package_manager(app: SourceTree, pkg: PackageJson) -> str:
    declared = pkg.package_manager
    if declared and declared[0] in ("npm", "pnpm", "yarn", "bun"):
        return declared[0]
    if app.has_file("pnpm-lock.yaml"):
        return "pnpm"
    if app.has_file("yarn.lock"):
        return "yarn"
    if app.has_file("bun.lockb") or app.has_file("bun.lock"):
        return "bun"
    return "npm"


def node_version(app: SourceTree, env: PlanEnv, pkg: PackageJson) -> str:
    """NIXPACKS_NODE_VERSION > engines.node > .nvmrc > .node-version, as a major version."""
    spec = env.config("NODE_VERSION") or pkg.engines_node
    if spec is None and app.has_file(".nvmrc"):
        text = app.read_text(".nvmrc").strip()
        spec = NVMRC_ALIASES.get(text.lower(), text.removeprefix("v"))
    if spec is None and app.has_file(".node-version"):
        spec = app.read_text(".node-version").strip().removeprefix("v")
    return node_major(spec) if spec and spec != "*" else "18"


def pm_setup_cmds(app: SourceTree, env: PlanEnv, pkg: PackageJson, manager: str) -> list[str]:
    """Package managers other than Debian's npm come from the npm registry, at the version asked for."""
    declared = pkg.package_manager
    version = declared[1] if declared and declared[0] == manager else None
    if manager == "pnpm":
        return [f"npm install -g pnpm@{version or _pnpm_major(app)}"]
    if manager == "yarn":
        if version and not version.startswith("1.") and not app.has_dir(".yarn/releases"):
            return ["npm install -g corepack && corepack enable"]
        return [f"npm install -g yarn@{version if version and version.startswith('1.') else '1'}"]
    if manager == "bun":
        return [f"npm install -g bun@{bun_version(env, pkg)}"]
    return [f"npm install -g npm@{version}"] if version else []


def bun_version(env: PlanEnv, pkg: PackageJson) -> str:
    declared = pkg.package_manager
    return env.config("BUN_VERSION") or (declared[1] if declared and declared[0] == "bun" else None) or "1"


def _pnpm_major(app: SourceTree) -> str:
    first = app.read_text("pnpm-lock.yaml").lstrip().splitlines()[:1]
    header = first[0] if first else ""
    for prefix, major in (
        ("lockfileVersion: 5.3", "6"),
        ("lockfileVersion: 5.4", "7"),
        ("lockfileVersion: '6", "8"),
    ):
        if header.startswith(prefix):
            return major
    return "9"


def install_cmd(app: SourceTree, manager: str) -> str:
    if manager == "pnpm":
        return "pnpm i --frozen-lockfile"
    if manager == "yarn":
        return (
            "yarn install --check-cache" if app.has_file(".yarnrc.yml") else "yarn install --frozen-lockfile"
        )
    if manager == "bun":
        return "bun i --no-save" if app.has_file("bun.lockb") or app.has_file("bun.lock") else "bun i"
    return "npm ci" if app.has_file("package-lock.json") or app.has_file("npm-shrinkwrap.json") else "npm i"


def install_files(app: SourceTree, pkg: PackageJson) -> list[str] | None:
    """The files `install` needs, so code-only changes reuse the installed dependencies."""
    scripts = pkg.scripts
    if any(name in scripts for name in LIFECYCLE_SCRIPTS if not _is_husky(scripts.get(name, ""))):
        return None
    files = app.existing(*MANIFESTS)
    if pkg.data.get("workspaces") or app.has_file("pnpm-workspace.yaml"):
        files += [name for name in app.files if name.endswith("/package.json")]
    return files


def _is_husky(script: str) -> bool:
    return script == "" or re.fullmatch(r"husky( install)?", script.strip()) is not None


def start_cmd(app: SourceTree, pkg: PackageJson, manager: str) -> str | None:
    executor = "bun" if manager == "bun" else "node"
    if "start" in pkg.scripts:
        return f"{manager} run start"
    main = pkg.text("main")
    if main and app.has_file(main):
        return f"{executor} {base.shell_word(main)}"
    if app.has_file("index.js"):
        return f"{executor} index.js"
    if manager == "bun" and app.has_file("index.ts"):
        return "bun index.ts"
    return None


def node_plan(app: SourceTree, env: PlanEnv) -> PlanLayer:
    pkg = read_package_json(app)
    manager = package_manager(app, pkg)
    layer = PlanLayer(
        variables={
            "CI": "true",
            "NODE_ENV": "production",
            "NPM_CONFIG_PRODUCTION": "false",
            "NIXPACKS_NODE_VERSION": node_version(app, env, pkg),
        }
    )
    layer.phases["setup"] = base.setup(["nodejs", "npm"], pm_setup_cmds(app, env, pkg, manager))
    layer.phases["install"] = base.install(
        [install_cmd(app, manager)],
        install_files(app, pkg),
        [CACHE_DIRS[manager]],
        ["/app/node_modules/.bin"],
    )
    build_cmds = [f"{manager} run build"] if "build" in pkg.scripts else []
    caches = ["node_modules/.cache", *([".next/cache"] if "next" in pkg.dependencies else [])]
    layer.phases["build"] = base.build(build_cmds, caches)
    if manager == "bun":
        layer.variables["NIXPACKS_BUN_VERSION"] = bun_version(env, pkg)
    spa = spa_layer(app, env, pkg.dependencies, pkg.scripts)
    if spa is not None:
        return _with_spa(layer, spa)
    layer.start = StartLayer(cmd=start_cmd(app, pkg, manager))
    return layer


def _with_spa(layer: PlanLayer, spa: PlanLayer) -> PlanLayer:
    setup = layer.phases["setup"]
    setup.apt_pkgs = [*(setup.apt_pkgs or []), *(spa.phases["setup"].apt_pkgs or [])]
    layer.variables.update(spa.variables)
    layer.static_assets.update(spa.static_assets)
    layer.start = spa.start
    return layer


class NodeProvider:
    name = "node"
    detects = "package.json (Node.js)"
    starts = "scripts.start, main or index.js in package.json"

    def detect(self, app: SourceTree, env: PlanEnv) -> bool:
        return app.has_file("package.json")

    def plan(self, app: SourceTree, env: PlanEnv) -> PlanLayer:
        return node_plan(app, env)


class BunProvider(NodeProvider):
    """Bun is Node's provider with bun as package manager (bun.lockb, bun.lock or packageManager bun@)."""

    name = "bun"
    detects = "package.json with bun.lockb, bun.lock or packageManager bun@ (Bun)"
    starts = "scripts.start, main, index.js or index.ts"

    def detect(self, app: SourceTree, env: PlanEnv) -> bool:
        return app.has_file("package.json") and package_manager(app, read_package_json(app)) == "bun"
