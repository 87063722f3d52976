"""Settings: DOCKYARD_* variables, the DOCKYARD_CONFIG TOML file, derived values, errors naming variables."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from core.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DOCKYARD_* variable of the machine running the tests leaks in; the default state dir is ours."""
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)
    state_home = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    return state_home


def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "dockyard.toml"
    path.write_text(text)
    monkeypatch.setenv("DOCKYARD_CONFIG", str(path))
    return path


def test_defaults(clean_environment: Path) -> None:
    settings = load_settings()
    assert settings.state_dir == clean_environment / "dockyard"
    assert settings.database_url == f"sqlite+aiosqlite:///{clean_environment / 'dockyard' / 'dockyard.db'}"
    assert settings.public_api_url == "http://127.0.0.1:7800"
    assert settings.api_token is None
    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.apps_domain == "localhost"
    assert settings.registry_url() == "http://127.0.0.1:5000"
    assert (settings.build_planner, settings.build_docker_binary, settings.build_network) == (
        "dockyard",
        Path("/usr/bin/docker"),
        None,
    )


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param({"DOCKYARD_API_PORT": "9000"}, {"api_port": 9000}, id="int"),
        pytest.param({"DOCKYARD_DRAIN_SECONDS": "0"}, {"drain_seconds": 0.0}, id="float-zero"),
        pytest.param(
            {"DOCKYARD_TEMPORAL_ADDRESS": "10.0.0.5:7233"}, {"temporal_address": "10.0.0.5:7233"}, id="str"
        ),
        pytest.param(
            {"DOCKYARD_APPS_DOMAIN": "Apps.Example.COM."}, {"apps_domain": "apps.example.com"}, id="domain"
        ),
        pytest.param(
            {"DOCKYARD_DATABASE_URL": "postgresql+asyncpg://u:p@db:5432/dockyard"},
            {"database_url": "postgresql+asyncpg://u:p@db:5432/dockyard"},
            id="postgres",
        ),
        pytest.param(
            {"DOCKYARD_STATE_DIR": "/srv/dockyard"},
            {
                "state_dir": Path("/srv/dockyard"),
                "database_url": "sqlite+aiosqlite:////srv/dockyard/dockyard.db",
            },
            id="state-dir-derives-database",
        ),
        pytest.param(
            {"DOCKYARD_API_HOST": "0.0.0.0", "DOCKYARD_API_PORT": "8000"},
            {"public_api_url": "http://0.0.0.0:8000"},
            id="derived-public-url",
        ),
        pytest.param(
            {"DOCKYARD_API_PORT": "8000", "DOCKYARD_PUBLIC_API_URL": "https://dockyard.example.com"},
            {"public_api_url": "https://dockyard.example.com"},
            id="explicit-public-url",
        ),
        pytest.param(
            {"DOCKYARD_REGISTRY_SCHEME": "https", "DOCKYARD_REGISTRY_HOST": "registry.example.com"},
            {"registry_url": "https://registry.example.com"},
            id="registry-url",
        ),
        pytest.param(
            {
                "DOCKYARD_BUILD_DOCKER_BINARY": "/opt/docker",
                "DOCKYARD_BUILD_DOCKER_HOST": "unix:///run/builder.sock",
                "DOCKYARD_BUILD_NETWORK": "host",
                "DOCKYARD_BUILD_KILL_GRACE_SECONDS": "5",
            },
            {
                "build_docker_binary": Path("/opt/docker"),
                "build_docker_host": "unix:///run/builder.sock",
                "build_network": "host",
                "build_kill_grace_seconds": 5.0,
            },
            id="builder-host",
        ),
        pytest.param(
            {"DOCKYARD_BUILD_PLANNER": "nixpacks", "DOCKYARD_BUILD_NIXPACKS_BINARY": "/opt/nixpacks"},
            {"build_planner": "nixpacks", "build_nixpacks_binary": "/opt/nixpacks"},
            id="real-nixpacks",
        ),
    ],
)
def test_environment_variables(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: dict[str, object]
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    for field, wanted in expected.items():
        actual = settings.registry_url() if field == "registry_url" else getattr(settings, field)
        assert actual == wanted, field


def test_secrets_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_API_TOKEN", "s3cret-token")
    settings = load_settings()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "s3cret-token"
    assert "s3cret-token" not in repr(settings)


def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file(
        tmp_path,
        monkeypatch,
        'api_port = 9100\napps_domain = "apps.example.com"\nstate_dir = "/var/lib/dockyard"\n'
        'registry_password = "from-file"\n',
    )
    settings = load_settings()
    assert settings.api_port == 9100
    assert settings.apps_domain == "apps.example.com"
    assert settings.database_url == "sqlite+aiosqlite:////var/lib/dockyard/dockyard.db"
    assert settings.public_api_url == "http://127.0.0.1:9100"
    assert settings.registry_password is not None
    assert settings.registry_password.get_secret_value() == "from-file"


@pytest.mark.parametrize(
    ("variable", "keyword", "expected"),
    [
        pytest.param(None, None, 9100, id="file-over-default"),
        pytest.param("9200", None, 9200, id="variable-over-file"),
        pytest.param("9200", 9300, 9300, id="keyword-over-variable"),
    ],
)
def test_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str | None, keyword: int | None, expected: int
) -> None:
    config_file(tmp_path, monkeypatch, "api_port = 9100\n")
    if variable is not None:
        monkeypatch.setenv("DOCKYARD_API_PORT", variable)
    settings = load_settings() if keyword is None else load_settings(api_port=keyword)
    assert settings.api_port == expected


@pytest.mark.parametrize(
    ("variables", "named", "reason"),
    [
        pytest.param(
            {"DOCKYARD_API_PORT": "0"}, "DOCKYARD_API_PORT", "greater than or equal to 1", id="port-zero"
        ),
        pytest.param(
            {"DOCKYARD_API_PORT": "65536"}, "DOCKYARD_API_PORT", "less than or equal to 65535", id="port-big"
        ),
        pytest.param({"DOCKYARD_API_PORT": "http"}, "DOCKYARD_API_PORT", "valid integer", id="port-not-int"),
        pytest.param(
            {"DOCKYARD_APPS_DOMAIN": "bad domain"},
            "DOCKYARD_APPS_DOMAIN",
            "must be a DNS name",
            id="domain-space",
        ),
        pytest.param(
            {"DOCKYARD_APPS_DOMAIN": "under_score.test"},
            "DOCKYARD_APPS_DOMAIN",
            "must be a DNS name",
            id="domain-label",
        ),
        pytest.param(
            {"DOCKYARD_APPS_DOMAIN": "."}, "DOCKYARD_APPS_DOMAIN", "must be a DNS name", id="domain-empty"
        ),
        pytest.param(
            {"DOCKYARD_DATABASE_URL": "mysql://u:p@db/dockyard"},
            "DOCKYARD_DATABASE_URL",
            "sqlite+aiosqlite:// or postgresql+asyncpg://",
            id="database-mysql",
        ),
        pytest.param(
            {"DOCKYARD_DATABASE_URL": "postgresql://db/dockyard"},
            "DOCKYARD_DATABASE_URL",
            "postgresql+asyncpg://",
            id="database-sync-driver",
        ),
        pytest.param(
            {"DOCKYARD_REGISTRY_SCHEME": "ftp"},
            "DOCKYARD_REGISTRY_SCHEME",
            "should match pattern",
            id="scheme",
        ),
        pytest.param(
            {"DOCKYARD_HEALTH_TIMEOUT_SECONDS": "0"},
            "DOCKYARD_HEALTH_TIMEOUT_SECONDS",
            "greater than 0",
            id="health-timeout",
        ),
        pytest.param(
            {"DOCKYARD_DRAIN_SECONDS": "-1"},
            "DOCKYARD_DRAIN_SECONDS",
            "greater than or equal to 0",
            id="drain",
        ),
        pytest.param(
            {"DOCKYARD_BUILD_PLANNER": "railpack"},
            "DOCKYARD_BUILD_PLANNER",
            "'dockyard' or 'nixpacks'",
            id="planner",
        ),
        pytest.param(
            {"DOCKYARD_BUILD_LOG_MAX_LINES": "0"},
            "DOCKYARD_BUILD_LOG_MAX_LINES",
            "greater than 0",
            id="build-log-lines",
        ),
    ],
)
def test_invalid_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str, reason: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"{named}: " in message
    assert reason in message


def test_every_invalid_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_API_PORT", "0")
    monkeypatch.setenv("DOCKYARD_APPS_DOMAIN", "bad domain")
    with pytest.raises(SettingsError, match=r"DOCKYARD_API_PORT: .*; DOCKYARD_APPS_DOMAIN: "):
        load_settings()


def test_invalid_value_in_config_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file(tmp_path, monkeypatch, "api_port = 0\n")
    with pytest.raises(SettingsError, match="DOCKYARD_API_PORT: Input should be greater than or equal to 1"):
        load_settings()


def test_unknown_key_in_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file(tmp_path, monkeypatch, "api_prot = 9000\n")
    with pytest.raises(SettingsError, match="DOCKYARD_API_PROT: Extra inputs are not permitted"):
        load_settings()


def test_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv("DOCKYARD_CONFIG", str(missing))
    with pytest.raises(SettingsError, match=re.escape(f"DOCKYARD_CONFIG: no such file: {missing}")):
        load_settings()


def test_config_file_that_is_not_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(tmp_path, monkeypatch, "api_port = \n")
    with pytest.raises(SettingsError, match=re.escape(f"DOCKYARD_CONFIG: {path} is not valid TOML")):
        load_settings()


def test_invalid_keyword_is_named() -> None:
    with pytest.raises(SettingsError, match="DOCKYARD_API_PORT: "):
        load_settings(api_port=70000)


@pytest.mark.parametrize(
    ("keywords", "names", "missing"),
    [
        pytest.param({}, ("api_token",), "DOCKYARD_API_TOKEN", id="secret-unset"),
        pytest.param({"api_token": ""}, ("api_token",), "DOCKYARD_API_TOKEN", id="secret-empty"),
        pytest.param(
            {},
            ("api_token", "registry_password", "agent_token"),
            "DOCKYARD_API_TOKEN, DOCKYARD_REGISTRY_PASSWORD, DOCKYARD_AGENT_TOKEN",
            id="all-listed",
        ),
        pytest.param(
            {"api_token": "t", "public_api_url": ""},
            ("api_token", "registry_password"),
            "DOCKYARD_REGISTRY_PASSWORD",
            id="only-the-missing-one",
        ),
    ],
)
def test_require_lists_missing(keywords: dict[str, str], names: tuple[str, ...], missing: str) -> None:
    settings = load_settings(**keywords)
    with pytest.raises(SettingsError) as caught:
        settings.require(*names)
    assert str(caught.value) == f"missing required settings: {missing}"


def test_require_empty_variable_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_API_TOKEN", "")
    with pytest.raises(SettingsError, match=r"missing required settings: DOCKYARD_API_TOKEN$"):
        load_settings().require("api_token")


def test_require_passes_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_API_TOKEN", "t")
    load_settings(registry_password="p").require("api_token", "registry_password", "database_url")


def test_unknown_keyword_is_refused() -> None:
    # A typo is an error, never a silently ignored setting.
    with pytest.raises(SettingsError, match="DOCKYARD_API_PROT: Extra inputs are not permitted"):
        load_settings(api_prot=1)
