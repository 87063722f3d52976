"""Runtime versions: what each repository asks for, and whether Debian bookworm's package satisfies it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.planner import plan_build
from core.planner.versions import RUNTIMES, node_major, satisfies
from tests.unit.planner.support import plan_of, write_repo


@pytest.mark.parametrize(
    ("repo", "env", "variable", "version"),
    [
        pytest.param("node-npm", {}, "NIXPACKS_NODE_VERSION", "18", id="node-engines-range-fits-debian"),
        pytest.param("node-engines-20", {}, "NIXPACKS_NODE_VERSION", "20", id="node-engines-20x"),
        pytest.param("node-nvmrc", {}, "NIXPACKS_NODE_VERSION", "20", id="node-nvmrc-lts-alias"),
        pytest.param("node-node-version", {}, "NIXPACKS_NODE_VERSION", "22", id="node-dot-node-version"),
        pytest.param("node-index", {}, "NIXPACKS_NODE_VERSION", "18", id="node-default"),
        pytest.param(
            "node-nvmrc", {"NIXPACKS_NODE_VERSION": "22"}, "NIXPACKS_NODE_VERSION", "22", id="node-env-wins"
        ),
        pytest.param("python-python-version", {}, "NIXPACKS_PYTHON_VERSION", "3.12", id="python-dot-version"),
        pytest.param("python-runtime-txt", {}, "NIXPACKS_PYTHON_VERSION", "3.11", id="python-runtime-txt"),
        pytest.param("python-pipenv", {}, "NIXPACKS_PYTHON_VERSION", "3.12", id="python-pipfile"),
        pytest.param("python-main-only", {}, "NIXPACKS_PYTHON_VERSION", "3.11", id="python-default"),
        pytest.param(
            "python-python-version",
            {"NIXPACKS_PYTHON_VERSION": "3.10"},
            "NIXPACKS_PYTHON_VERSION",
            "3.10",
            id="python-env-wins",
        ),
        pytest.param("go-mod", {}, "NIXPACKS_GO_VERSION", "1.22", id="go-mod-directive"),
        pytest.param("go-main-only", {}, "NIXPACKS_GO_VERSION", "1.19", id="go-default"),
        pytest.param("rust-bin", {}, "NIXPACKS_RUST_VERSION", "1.70", id="rust-version-field"),
        pytest.param("ruby-rack", {}, "NIXPACKS_RUBY_VERSION", "3.2.2", id="ruby-gemfile"),
        pytest.param("ruby-rails", {}, "NIXPACKS_RUBY_VERSION", "3.1.4", id="ruby-dot-version"),
        pytest.param("php-composer", {}, "NIXPACKS_PHP_VERSION", "^8.1", id="php-composer-require"),
        pytest.param("php-index", {}, "NIXPACKS_PHP_VERSION", "8.2", id="php-default"),
        pytest.param("bun-package-manager", {}, "NIXPACKS_BUN_VERSION", "1.1.8", id="bun-package-manager"),
        pytest.param(
            "deno-json", {"NIXPACKS_DENO_VERSION": "2.1.4"}, "NIXPACKS_DENO_VERSION", "2.1.4", id="deno"
        ),
    ],
)
def test_version_detection(repo: str, env: dict[str, str], variable: str, version: str) -> None:
    assert plan_of(repo, **env).variables[variable] == version


def test_rust_toolchain_file(tmp_path: Path) -> None:
    write_repo(
        tmp_path,
        {
            "Cargo.toml": '[package]\nname = "x"\nversion = "0.1.0"\n',
            "src/main.rs": "fn main() {}\n",
            "rust-toolchain.toml": '[toolchain]\nchannel = "1.62.0"\n',
        },
    )
    assert plan_build(tmp_path).variables["NIXPACKS_RUST_VERSION"] == "1.62.0"


def test_requested_runtime_reaches_the_setup_tools(tmp_path: Path) -> None:
    write_repo(
        tmp_path, {"pyproject.toml": '[project]\nname = "x"\n', "uv.lock": "", ".tool-versions": "uv 0.5.1\n"}
    )
    plan = plan_build(tmp_path, {"NIXPACKS_START_CMD": "python -m x"})
    assert plan.variables["NIXPACKS_UV_VERSION"] == "0.5.1"


@pytest.mark.parametrize(
    ("spec", "major"),
    [
        pytest.param(">=18", "18", id="range-including-debian"),
        pytest.param("^18.17.0", "18", id="caret-18"),
        pytest.param("20", "20", id="plain-major"),
        pytest.param("20.x", "20", id="x-range"),
        pytest.param(">=20 <23", "22", id="newest-lts-in-range"),
        pytest.param("^16 || ^18", "18", id="or-ranges"),
        pytest.param("14.21.3", "14", id="exact"),
        pytest.param("21", "21", id="odd-major-kept"),
        pytest.param("lts", "18", id="unreadable-defaults"),
    ],
)
def test_node_major(spec: str, major: str) -> None:
    assert node_major(spec) == major


@pytest.mark.parametrize(
    ("version", "spec", "composer", "expected"),
    [
        pytest.param((8, 2), "^8.1", True, True, id="composer-caret"),
        pytest.param((8, 2), "~8.1", True, True, id="composer-tilde-minor"),
        pytest.param((8, 2), "~8.1", False, False, id="npm-tilde-minor"),
        pytest.param((8, 2), ">=7.4 <8.2", False, False, id="upper-bound-excludes"),
        pytest.param((8, 2), "7.4.* || 8.2.*", True, True, id="alternatives"),
        pytest.param((3, 11), "3.11.4", False, True, id="patch-ignored"),
        pytest.param((3, 11), "3.12", False, False, id="other-minor"),
        pytest.param((18, 19), ">18", False, False, id="greater-than-major"),
        pytest.param((18, 19), "18 - 20", False, True, id="hyphen-range"),
        pytest.param((18, 19), "*", False, True, id="star"),
        pytest.param((18, 19), "banana", False, None, id="unreadable"),
    ],
)
def test_satisfies(version: tuple[int, int], spec: str, composer: bool, expected: bool | None) -> None:
    assert satisfies(version, spec, composer=composer) is expected


@pytest.mark.parametrize(
    ("runtime", "requested", "honoured"),
    [
        pytest.param("node", "18", True, id="node-18"),
        pytest.param("node", ">=16", True, id="node-range"),
        pytest.param("node", "20", False, id="node-20"),
        pytest.param("python", "3.11", True, id="python-3.11"),
        pytest.param("python", "3.12", False, id="python-3.12"),
        pytest.param("go", "1.18", True, id="go-older-minimum"),
        pytest.param("go", "1.22", False, id="go-newer-minimum"),
        pytest.param("rust", "1.63", True, id="rust-minimum-met"),
        pytest.param("rust", "stable", False, id="rust-channel"),
        pytest.param("ruby", "3.1.4", True, id="ruby-3.1"),
        pytest.param("php", "^8.1", True, id="php-constraint"),
        pytest.param("php", "8.3", False, id="php-8.3"),
    ],
)
def test_debian_honours(runtime: str, requested: str, honoured: bool) -> None:
    assert RUNTIMES[runtime].honoured(requested) is honoured
