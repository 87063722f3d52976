"""The proxmox_* settings and the client they configure (no request is made: the client connects lazily)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from activities.proxmox.client import PveClient
from core.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))


def test_defaults() -> None:
    settings = load_settings()
    assert settings.proxmox_hosts == []
    assert (settings.proxmox_port, settings.proxmox_verify, settings.proxmox_timeout_seconds) == (
        8006,
        True,
        60.0,
    )
    assert settings.proxmox_token_secret is None and settings.proxmox_ca_file is None


def test_from_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "pve-root-ca.pem"
    for name, value in {
        "DOCKYARD_PROXMOX_HOSTS": "pve1.example.com, 10.0.0.2:8443 ,",
        "DOCKYARD_PROXMOX_TOKEN_ID": "dockyard@pve!provision",
        "DOCKYARD_PROXMOX_TOKEN_SECRET": "0b7e-secret",
        "DOCKYARD_PROXMOX_CA_FILE": str(ca),
        "DOCKYARD_PROXMOX_TIMEOUT_SECONDS": "90",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.proxmox_hosts == ["pve1.example.com", "10.0.0.2:8443"]
    assert settings.proxmox_token_secret is not None
    assert settings.proxmox_token_secret.get_secret_value() == "0b7e-secret"
    client = PveClient.from_settings(settings)
    assert (client.hosts, client.timeout) == (["pve1.example.com", "10.0.0.2:8443"], 90.0)
    assert client._verify == str(ca)


def test_hosts_as_a_toml_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text('proxmox_hosts = ["pve1", "pve2"]\nproxmox_user = "root@pam"\nproxmox_verify = false\n')
    monkeypatch.setenv("DOCKYARD_CONFIG", str(config))
    monkeypatch.setenv("DOCKYARD_PROXMOX_PASSWORD", "pw")
    settings = load_settings()
    assert (settings.proxmox_hosts, settings.proxmox_user, settings.proxmox_verify) == (
        ["pve1", "pve2"],
        "root@pam",
        False,
    )
    assert PveClient.from_settings(settings)._verify is False


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        pytest.param(
            "DOCKYARD_PROXMOX_TOKEN_ID", "dockyard@pve", "DOCKYARD_PROXMOX_TOKEN_ID", id="token-no-name"
        ),
        pytest.param(
            "DOCKYARD_PROXMOX_TOKEN_ID", "provision", "DOCKYARD_PROXMOX_TOKEN_ID", id="token-no-user"
        ),
        pytest.param("DOCKYARD_PROXMOX_USER", "root", "DOCKYARD_PROXMOX_USER", id="user-no-realm"),
        pytest.param(
            "DOCKYARD_PROXMOX_TIMEOUT_SECONDS", "5", "greater than or equal to 30", id="timeout-short"
        ),
        pytest.param("DOCKYARD_PROXMOX_PORT", "0", "DOCKYARD_PROXMOX_PORT", id="port"),
    ],
)
def test_refusals(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param({}, "DOCKYARD_PROXMOX_HOSTS", id="no-host"),
        pytest.param({"DOCKYARD_PROXMOX_HOSTS": "pve1"}, "no Proxmox VE credentials", id="no-credentials"),
        pytest.param(
            {"DOCKYARD_PROXMOX_HOSTS": "pve1", "DOCKYARD_PROXMOX_TOKEN_ID": "a@pve!b"},
            "DOCKYARD_PROXMOX_TOKEN_SECRET",
            id="token-without-secret",
        ),
    ],
)
def test_client_needs_a_host_and_credentials(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message):
        PveClient.from_settings(load_settings())
