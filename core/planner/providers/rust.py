"""Rust: Cargo packages and workspaces, release binaries copied to ./bin."""

from __future__ import annotations

from typing import Any, Protocol

from core.planner.environment import PlanEnv
from core.planner.errors import PlanError
from core.planner.layers import PlanLayer, StartLayer
from core.planner.providers import base
from core.planner.source import SourceTree

CACHES = ["/root/.cargo/git", "/root/.cargo/registry", "target"]


def rust_version(app: SourceTree, env: PlanEnv, cargo: dict[str, Any]) -> str | None:
    """NIXPACKS_RUST_VERSION > rust-toolchain(.toml) channel > package.rust-version."""
    if configured := env.config("RUST_VERSION"):
        return configured
    for name in ("rust-toolchain.toml", "rust-toolchain"):
        if app.has_file(name):
            text = app.read_text(name)
            if name.endswith(".toml"):
                channel = app.read_toml(name).get("toolchain", {}).get("channel")
                return str(channel) if channel else None
            return text.strip() or None
    version = cargo.get("package", {}).get("rust-version")
    return str(version) if version else None


class Files(Protocol):
    def has_file(self, relative: str) -> bool: ...

    def glob(self, pattern: str) -> list[str]: ...


def binaries(app: Files, cargo: dict[str, Any]) -> list[str]:
    names = []
    package = cargo.get("package", {}).get("name")
    if package and app.has_file("src/main.rs"):
        names.append(str(package))
    for target in cargo.get("bin", []) or []:
        if isinstance(target, dict) and target.get("name") and target["name"] not in names:
            names.append(str(target["name"]))
    names += [name.removeprefix("src/bin/").removesuffix(".rs") for name in app.glob("src/bin/*.rs")]
    return list(dict.fromkeys(names))


def workspace_binary(app: SourceTree, env: PlanEnv, cargo: dict[str, Any]) -> str | None:
    """NIXPACKS_CARGO_WORKSPACE, else the first workspace member with a binary."""
    if configured := env.config("CARGO_WORKSPACE"):
        return configured
    workspace = cargo.get("workspace")
    if not isinstance(workspace, dict):
        return None
    excluded = set(workspace.get("exclude", []))
    for pattern in [*workspace.get("default-members", []), *workspace.get("members", [])]:
        for manifest in app.glob(f"{pattern}/Cargo.toml"):
            member = manifest.removesuffix("/Cargo.toml")
            if member in excluded:
                continue
            member_cargo = app.read_toml(manifest)
            if binaries(_Sub(app, member), member_cargo):
                return str(member_cargo["package"]["name"])
    return None


class _Sub:
    """The slice of SourceTree that `binaries` needs, seen from a workspace member's folder."""

    def __init__(self, app: SourceTree, folder: str) -> None:
        self.app, self.folder = app, folder

    def has_file(self, relative: str) -> bool:
        return self.app.has_file(f"{self.folder}/{relative}")

    def glob(self, pattern: str) -> list[str]:
        prefix = f"{self.folder}/"
        return [name.removeprefix(prefix) for name in self.app.glob(prefix + pattern)]


def start_binary(app: SourceTree, env: PlanEnv, cargo: dict[str, Any], bins: list[str]) -> str | None:
    if len(bins) == 1:
        return bins[0]
    if configured := env.config("RUST_BIN"):
        if configured not in bins:
            raise PlanError(
                f"NIXPACKS_RUST_BIN={configured}: no such binary; Cargo.toml builds {', '.join(bins)}"
            )
        return configured
    default_run = cargo.get("package", {}).get("default-run")
    return str(default_run) if default_run else None


class RustProvider:
    name = "rust"
    detects = "Cargo.toml (Rust)"
    starts = "the only binary, NIXPACKS_RUST_BIN or package.default-run"

    def detect(self, app: SourceTree, env: PlanEnv) -> bool:
        return app.has_file("Cargo.toml")

    def plan(self, app: SourceTree, env: PlanEnv) -> PlanLayer:
        cargo = app.read_toml("Cargo.toml")
        layer = PlanLayer(variables={"ROCKET_ADDRESS": "0.0.0.0"})
        if version := rust_version(app, env, cargo):
            layer.variables["NIXPACKS_RUST_VERSION"] = version
        apt = ["rustc", "cargo", "gcc", "libc6-dev", base.APT_CA]
        if "openssl" in app.read_text("Cargo.lock") or "openssl" in cargo.get("dependencies", {}):
            apt += ["pkg-config", "libssl-dev"]
        layer.phases["setup"] = base.setup(apt)
        cmds = ["mkdir -p bin"]
        start = None
        if member := workspace_binary(app, env, cargo):
            cmds += [f"cargo build --release --package {member}", f"cp target/release/{member} bin"]
            start = member
        elif bins := binaries(app, cargo):
            cmds += ["cargo build --release", *[f"cp target/release/{name} bin" for name in bins]]
            start = start_binary(app, env, cargo, bins)
        build = base.build(cmds, CACHES)
        build.depends_on = ["setup"]
        layer.phases["build"] = build
        layer.start = StartLayer(cmd=f"./bin/{start}" if start else None)
        return layer
