"""Configuration: nixpacks.toml/json (with "..."), railway.toml/json, dockyard.toml, NIXPACKS_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.planner import ConfigError, DeployConfig, plan_build, read_deploy_config
from tests.unit.planner.support import cmds, fixture, plan_of, write_repo


def test_nixpacks_toml_extends_provider_defaults_with_dots() -> None:
    plan = plan_of("config-nixpacks-toml")
    assert plan.phases["setup"].apt_pkgs == ["nodejs", "npm", "ffmpeg"]
    assert cmds(plan, "build") == ["npm run build", "npm run assets"]
    assert plan.phases["build"].cache_directories == ["node_modules/.cache", ".cache/assets"]
    assert plan.start.cmd == "node dist/server.js"


def test_nixpacks_toml_adds_custom_phases_and_variables() -> None:
    plan = plan_of("config-nixpacks-toml")
    assert plan.phases["migrate"].depends_on == ["build"]
    assert plan.phases["migrate"].cmds == ["node migrate.js"]
    assert plan.variables["NODE_OPTIONS"] == "--max-old-space-size=512"


def test_nixpacks_toml_variables_reach_providers() -> None:
    assert plan_of("config-nixpacks-toml").variables["NIXPACKS_NODE_VERSION"] == "20"


def test_nixpacks_json_replaces_without_dots() -> None:
    plan = plan_of("config-nixpacks-json")
    assert cmds(plan, "install") == ["pip install --user -r requirements.txt"]
    assert plan.phases["install"].only_include_files == ["requirements.txt"]
    assert plan.start.cmd == "python -m app"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param('cmds = ["echo first", "..."]', ["echo first", "npm ci"], id="dots-last"),
        pytest.param('cmds = ["...", "echo last"]', ["npm ci", "echo last"], id="dots-first"),
        pytest.param('cmds = ["a", "...", "b"]', ["a", "npm ci", "b"], id="dots-middle"),
        pytest.param('cmds = ["a"]', ["a"], id="replace"),
        pytest.param("cmds = []", [], id="empty-removes"),
        pytest.param('cmds = ["@auto", "b"]', ["npm ci", "b"], id="auto-marker"),
    ],
)
def test_dots_extension_rule(tmp_path: Path, config: str, expected: list[str]) -> None:
    write_repo(
        tmp_path,
        {
            "package.json": '{"scripts": {"start": "node index.js"}}',
            "package-lock.json": "{}",
            "nixpacks.toml": f"[phases.install]\n{config}\n",
        },
    )
    assert cmds(plan_build(tmp_path), "install") == expected


def test_providers_list_adds_a_second_provider_with_prefixed_phases(tmp_path: Path) -> None:
    write_repo(
        tmp_path,
        {
            "package.json": '{"scripts": {"start": "node index.js", "build": "vite build"}}',
            "requirements.txt": "flask\n",
            "main.py": "",
            "nixpacks.toml": 'providers = ["...", "python"]\n',
        },
    )
    plan = plan_build(tmp_path)
    assert plan.providers == ["node", "python"]
    assert cmds(plan, "build") == ["npm run build"]
    assert cmds(plan, "python:install") == [
        "python3 -m venv --copies /opt/venv && . /opt/venv/bin/activate && pip install -r requirements.txt"
    ]
    assert plan.phases["python:install"].depends_on == ["python:setup"]
    assert plan.start.cmd == "npm run start"


def test_providers_list_replaces_detection(tmp_path: Path) -> None:
    write_repo(tmp_path, {"index.html": "", "main.py": "", "nixpacks.toml": 'providers = ["python"]\n'})
    assert plan_build(tmp_path).providers == ["python"]


@pytest.mark.parametrize(
    ("env", "phase", "expected"),
    [
        pytest.param({"NIXPACKS_INSTALL_CMD": "npm install --legacy-peer-deps"}, "install",
                     ["npm install --legacy-peer-deps"], id="install-cmd"),
        pytest.param({"NIXPACKS_BUILD_CMD": "npm run build:prod"}, "build",
                     ["npm run build:prod"], id="build-cmd"),
    ],
)  # fmt: skip
def test_env_commands_replace_provider_defaults(env: dict[str, str], phase: str, expected: list[str]) -> None:
    assert cmds(plan_of("node-npm", **env), phase) == expected


def test_env_start_cmd_wins_over_everything() -> None:
    assert plan_of("config-precedence", NIXPACKS_START_CMD="node env.js").start.cmd == "node env.js"


def test_env_apt_pkgs_extend_setup() -> None:
    setup = plan_of("node-npm", NIXPACKS_APT_PKGS="ffmpeg, imagemagick").phases["setup"]
    assert setup.apt_pkgs == ["ffmpeg", "imagemagick", "nodejs", "npm"]


def test_env_cache_dirs_extend() -> None:
    plan = plan_of("node-npm", NIXPACKS_BUILD_CMD="make", NIXPACKS_BUILD_CACHE_DIRS="/root/.cache/make")
    assert plan.phases["build"].cache_directories == ["node_modules/.cache", "/root/.cache/make"]


def test_env_config_file(tmp_path: Path) -> None:
    write_repo(tmp_path, {"main.py": "", "deploy/nixpacks.toml": '[start]\ncmd = "python serve.py"\n'})
    plan = plan_build(tmp_path, {"NIXPACKS_CONFIG_FILE": "deploy/nixpacks.toml"})
    assert plan.start.cmd == "python serve.py"


def test_precedence_dockyard_over_railway_over_nixpacks_over_provider() -> None:
    plan = plan_of("config-precedence")
    assert cmds(plan, "build") == ["echo dockyard"]
    assert plan.start.cmd == "node dockyard.js"


@pytest.mark.parametrize(
    ("remove", "build", "start"),
    [
        pytest.param(["dockyard.toml"], ["echo railway"], "node railway.js", id="railway-over-nixpacks"),
        pytest.param(["dockyard.toml", "railway.toml"], ["echo nixpacks"], "node nixpacks.js", id="nixpacks"),
        pytest.param(
            ["dockyard.toml", "railway.toml", "nixpacks.toml"],
            ["npm run build"],
            "npm run start",
            id="provider",
        ),
    ],
)
def test_precedence_layer_by_layer(tmp_path: Path, remove: list[str], build: list[str], start: str) -> None:
    source = fixture("config-precedence")
    for path in source.iterdir():
        if path.name not in remove:
            (tmp_path / path.name).write_text(path.read_text())
    plan = plan_build(tmp_path)
    assert cmds(plan, "build") == build
    assert plan.start.cmd == start


def test_railway_toml_build_and_start() -> None:
    plan = plan_of("config-railway-toml")
    assert cmds(plan, "build") == ["python compile.py"]
    assert plan.start.cmd == "gunicorn main:app"


def test_railway_json_with_nixpacks_plan() -> None:
    plan = plan_of("config-railway-json")
    assert cmds(plan, "build") == ["npm run build:prod"]
    assert plan.phases["setup"].apt_pkgs == ["nodejs", "npm", "imagemagick"]
    assert plan.start.cmd == "node server.js"


def test_deploy_config_from_railway_toml() -> None:
    assert read_deploy_config(fixture("config-railway-toml")) == DeployConfig(
        start_command="gunicorn main:app",
        pre_deploy_command="python manage.py migrate && python seed.py",
        healthcheck_path="/health",
        healthcheck_timeout=100,
        restart_policy_type="ON_FAILURE",
        restart_policy_max_retries=5,
        num_replicas=2,
        cron_schedule="*/5 * * * *",
        overlap_seconds=30,
        draining_seconds=10,
    )


def test_deploy_config_dockyard_overrides_railway_key_by_key() -> None:
    assert read_deploy_config(fixture("config-precedence")) == DeployConfig(
        start_command="node dockyard.js", num_replicas=2, healthcheck_path="/dockyard"
    )


def test_deploy_config_empty_without_files() -> None:
    assert read_deploy_config(fixture("node-npm")) == DeployConfig()


def test_railway_toml_wins_over_railway_json(tmp_path: Path) -> None:
    write_repo(
        tmp_path,
        {
            "railway.toml": "[deploy]\nnumReplicas = 2\n",
            "railway.json": '{"deploy": {"numReplicas": 5}}',
        },
    )
    assert read_deploy_config(tmp_path).num_replicas == 2


@pytest.mark.parametrize(
    ("files", "file", "key", "reason"),
    [
        pytest.param(
            {"nixpacks.toml": '[phases.build]\ncmds = "npm run build"\n'},
            "nixpacks.toml", "phases.build.cmds", "expected a list of strings", id="cmds-not-a-list",
        ),
        pytest.param(
            {"nixpacks.toml": '[phases.build]\ncmds = ["a", 1]\n'},
            "nixpacks.toml", "phases.build.cmds", "expected a list of strings", id="cmds-not-strings",
        ),
        pytest.param(
            {"nixpacks.toml": "[phases.build\n"},
            "nixpacks.toml", "", "invalid TOML", id="toml-syntax",
        ),
        pytest.param(
            {"nixpacks.toml": '[phases.build]\ncmd = ["x"]\n'},
            "nixpacks.toml", "phases.build.cmd", "unknown key", id="unknown-phase-key",
        ),
        pytest.param(
            {"nixpacks.toml": '[phases.setup]\nnixPkgs = ["...", "ffmpeg"]\n'},
            "nixpacks.toml", "phases.setup.nixPkgs", "aptPkgs", id="nix-packages",
        ),
        pytest.param(
            {"nixpacks.toml": '[start]\ncmd = 5\n'},
            "nixpacks.toml", "start.cmd", "expected a string, got a number (5)", id="start-cmd-number",
        ),
        pytest.param(
            {"nixpacks.toml": 'providers = ["cobol"]\n'},
            "nixpacks.toml", "providers", "unknown provider 'cobol'", id="unknown-provider",
        ),
        pytest.param(
            {"nixpacks.json": '{"phases": {"build": {"cmds": ["x"],}}}'},
            "nixpacks.json", "", "invalid JSON at line 1", id="json-syntax",
        ),
        pytest.param(
            {"railway.json": '{"deploy": {"numReplicas": "two"}}'},
            "railway.json", "deploy.numReplicas", "expected a whole number, got a string ('two')",
            id="replicas-type",
        ),
        pytest.param(
            {"railway.toml": '[deploy]\nnumReplicas = 0\n'},
            "railway.toml", "deploy.numReplicas", "expected a number >= 1, got 0", id="replicas-zero",
        ),
        pytest.param(
            {"railway.toml": '[deploy]\nrestartPolicyType = "sometimes"\n'},
            "railway.toml", "deploy.restartPolicyType", "expected ON_FAILURE, ALWAYS or NEVER",
            id="restart-policy",
        ),
        pytest.param(
            {"railway.toml": '[deploy]\nhealthcheckPath = "health"\n'},
            "railway.toml", "deploy.healthcheckPath", "starting with /", id="healthcheck-path",
        ),
        pytest.param(
            {"railway.toml": '[deploy]\ncronSchedule = "every minute"\n'},
            "railway.toml", "deploy.cronSchedule", "five fields", id="cron",
        ),
        pytest.param(
            {"railway.toml": '[build]\nbuilder = "PAKETO"\n'},
            "railway.toml", "build.builder", "unsupported builder 'PAKETO'", id="builder",
        ),
        pytest.param(
            {"railway.toml": '[build]\nwatchPatterns = "src/**"\n'},
            "railway.toml", "build.watchPatterns", "expected a list of strings", id="watch-patterns",
        ),
        pytest.param(
            {"dockyard.toml": "[deploy]\nreplicas = 2\n"},
            "dockyard.toml", "deploy.replicas", "unknown key", id="dockyard-unknown-key",
        ),
        pytest.param(
            {"dockyard.toml": '[deploy]\nstart_command = "a"\nstartCommand = "b"\n'},
            "dockyard.toml", "deploy.startCommand", "given twice", id="dockyard-both-spellings",
        ),
        pytest.param(
            {"dockyard.toml": "[services]\n"},
            "dockyard.toml", "services", "unknown key", id="dockyard-unknown-table",
        ),
        pytest.param(
            {"dockyard.toml": '[build]\nbuild_command = """one\ntwo"""\n'},
            "dockyard.toml", "build.buildCommand", "single line", id="multi-line-command",
        ),
        pytest.param(
            {"package.json": "{\"scripts\": {\n}"},
            "package.json", "", "invalid JSON at line 2", id="broken-package-json",
        ),
        pytest.param(
            {"pyproject.toml": "[project\n"},
            "pyproject.toml", "", "invalid TOML", id="broken-pyproject",
        ),
    ],
)  # fmt: skip
def test_malformed_config(tmp_path: Path, files: dict[str, str], file: str, key: str, reason: str) -> None:
    write_repo(tmp_path, {"index.html": "", **files})
    with pytest.raises(ConfigError) as caught:
        plan_build(tmp_path)
    error = caught.value
    assert (error.file, error.key) == (file, key)
    assert reason in error.reason
    assert error.message == (f"{file}: {key}: {error.reason}" if key else f"{file}: {error.reason}")


def test_malformed_deploy_config_is_reported_by_read_deploy_config(tmp_path: Path) -> None:
    write_repo(tmp_path, {"railway.toml": "[deploy]\nhealthcheckTimeout = -1\n"})
    with pytest.raises(
        ConfigError, match=r"^railway.toml: deploy.healthcheckTimeout: expected a number >= 1"
    ):
        read_deploy_config(tmp_path)


def test_message_format_matches_the_contract(tmp_path: Path) -> None:
    write_repo(tmp_path, {"index.html": "", "nixpacks.toml": '[phases.build]\ncmds = "x"\n'})
    with pytest.raises(ConfigError) as caught:
        plan_build(tmp_path)
    assert caught.value.message == "nixpacks.toml: phases.build.cmds: expected a list of strings"


def test_nix_packages_from_env_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_of("node-npm", NIXPACKS_PKGS="ffmpeg")
    assert (caught.value.file, caught.value.key) == ("environment", "NIXPACKS_PKGS")


def test_missing_config_file_from_env() -> None:
    with pytest.raises(ConfigError, match="not found"):
        plan_of("node-npm", NIXPACKS_CONFIG_FILE="ci/nixpacks.toml")


def test_railway_keys_dockyard_does_not_use_are_ignored() -> None:
    assert plan_of("config-railway-toml").start.cmd == "gunicorn main:app"  # has sleepApplication


def test_nix_dots_alone_are_harmless(tmp_path: Path) -> None:
    write_repo(tmp_path, {"index.html": "", "nixpacks.toml": '[phases.setup]\nnixPkgs = ["..."]\n'})
    assert plan_build(tmp_path).phases["setup"].nix_pkgs == []


def test_railway_json_nulls_mean_unset(tmp_path: Path) -> None:
    railway = '{"build": {"buildCommand": null}, "deploy": {"numReplicas": null}}'
    write_repo(tmp_path, {"railway.json": railway})
    assert read_deploy_config(tmp_path) == DeployConfig()
