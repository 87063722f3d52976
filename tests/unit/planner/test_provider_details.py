"""Provider details: static sites and SPAs, binary selection, Procfile, provider variables."""

from __future__ import annotations

import pytest

from tests.unit.planner.support import cmds, plan_of


@pytest.mark.parametrize(
    ("repo", "root", "spa"),
    [
        pytest.param("static-index", "/app", False, id="index-html"),
        pytest.param("static-public", "/app/public", False, id="public-dir"),
        pytest.param("static-dist", "/app/dist", False, id="dist-dir"),
        pytest.param("staticfile", "/app/site", False, id="staticfile-root"),
        pytest.param("node-vite-spa", "/app/dist", True, id="vite-spa"),
        pytest.param("node-vite-outdir", "/app/build", True, id="vite-outdir-from-config"),
    ],
)
def test_static_sites_are_served_by_caddy(repo: str, root: str, spa: bool) -> None:
    plan = plan_of(repo)
    caddyfile = (plan.static_assets or {})["Caddyfile"]
    assert plan.start.cmd == "caddy run --config /assets/Caddyfile --adapter caddyfile"
    assert f'root * "{root}"' in caddyfile
    assert ":{$PORT:80} {" in caddyfile
    assert ("try_files {path} /index.html" in caddyfile) is spa


def test_staticfile_directory_visible_lists_folders() -> None:
    assert "file_server browse" in (plan_of("staticfile").static_assets or {})["Caddyfile"]


def test_vite_with_a_start_script_is_not_an_spa() -> None:
    plan = plan_of("node-vite-ssr")
    assert plan.start.cmd == "npm run start"
    assert plan.static_assets is None


def test_spa_caddy_can_be_turned_off() -> None:
    plan = plan_of("node-vite-spa", NIXPACKS_SPA_CADDY="false", NIXPACKS_START_CMD="npx vite preview")
    assert plan.start.cmd == "npx vite preview"
    assert "caddy" not in plan.phases["setup"].apt_pkgs


def test_spa_output_dir_from_env() -> None:
    plan = plan_of("node-vite-spa", NIXPACKS_SPA_OUT_DIR="out")
    assert plan.variables["NIXPACKS_SPA_OUTPUT_DIR"] == "out"
    assert 'root * "/app/out"' in (plan.static_assets or {})["Caddyfile"]


@pytest.mark.parametrize(
    ("env", "build"),
    [
        pytest.param({"NIXPACKS_GO_BIN": "worker"}, "go build -o out ./cmd/worker", id="go-bin"),
        pytest.param({}, "go build -o out ./cmd/server", id="first-cmd"),
    ],
)
def test_go_binary_selection(env: dict[str, str], build: str) -> None:
    assert cmds(plan_of("go-cmd", **env), "build") == [build]


def test_rust_bin_from_env() -> None:
    assert plan_of("rust-multi-bin", NIXPACKS_RUST_BIN="migrate").start.cmd == "./bin/migrate"


def test_procfile_web_wins_over_provider_and_release_runs_after_build() -> None:
    plan = plan_of("procfile-python")
    assert plan.providers == ["python"]
    assert plan.start.cmd == "gunicorn wsgi:app --log-file -"
    release = plan.phases["release"]
    assert release.cmds == ["python migrate.py"]
    assert release.depends_on == ["setup", "install", "build"]


def test_procfile_alone_needs_no_provider() -> None:
    plan = plan_of("procfile-only")
    assert plan.providers == []
    assert plan.start.cmd == "./run.sh"


@pytest.mark.parametrize(
    ("repo", "variables"),
    [
        pytest.param(
            "node-npm", {"CI": "true", "NODE_ENV": "production", "NPM_CONFIG_PRODUCTION": "false"}, id="node"
        ),
        pytest.param("python-pip", {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}, id="python"),
        pytest.param(
            "python-uv",
            {
                "UV_PROJECT_ENVIRONMENT": "/opt/venv",
                "UV_PYTHON_DOWNLOADS": "never",
                "NIXPACKS_UV_VERSION": "0.9.30",
            },
            id="uv",
        ),
        pytest.param("python-poetry", {"NIXPACKS_POETRY_VERSION": "2.1.4"}, id="poetry"),
        pytest.param("go-mod", {"CGO_ENABLED": "0"}, id="go"),
        pytest.param("rust-bin", {"ROCKET_ADDRESS": "0.0.0.0"}, id="rust"),
        pytest.param("ruby-rails", {"RAILS_ENV": "production", "RAILS_LOG_TO_STDOUT": "enabled"}, id="rails"),
        pytest.param("php-composer", {"PHP_CLI_SERVER_WORKERS": "4"}, id="php"),
    ],
)
def test_provider_variables(repo: str, variables: dict[str, str]) -> None:
    assert plan_of(repo).variables.items() >= variables.items()


def test_service_variables_other_than_nixpacks_stay_out_of_the_plan() -> None:
    plan = plan_of("node-npm", DATABASE_URL="postgres://secret", NIXPACKS_NO_CACHE="1")
    assert "DATABASE_URL" not in plan.variables
    assert plan.variables["NIXPACKS_NO_CACHE"] == "1"
