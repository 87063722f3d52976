"""infra/systemd/: the production units restart like `dockyard up` does, never stop one another, and run
commands that exist (a `dockyard` subcommand, a script of this repository, a program core/programs.py
installs). systemd cannot run here; `systemd-analyze verify` checks them where it is installed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from cli.main import app
from cli.render import RENDERERS
from core.programs import PROGRAMS, Source

REPO_ROOT = Path(__file__).resolve().parents[2]
UNITS_DIR = REPO_ROOT / "infra" / "systemd"
INSTALL_ROOT = "/opt/dockyard"  # where infra/systemd/README.md installs the checkout
EXTERNAL_UNITS = {"network-online.target", "multi-user.target", "postgresql.service", "docker.service"}
# Debian's own, in Conflicts=
EXTERNAL_UNITS |= {"docker-registry.service", "redis-server.service", "prometheus.service"}
AGENT = "dockyard-agent.service"

Unit = dict[str, list[tuple[str, str]]]


def parse(path: Path) -> Unit:
    sections: Unit = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [value for k, value in unit.get(section, []) if k == key]


def words(unit: Unit, section: str, key: str) -> set[str]:
    return {word for value in values(unit, section, key) for word in value.split()}


UNITS = {path.name: parse(path) for path in sorted(UNITS_DIR.glob("dockyard*.*"))}
SERVICES = {name: unit for name, unit in UNITS.items() if name.endswith(".service")}


def test_there_is_a_unit_for_each_process_dockyard_up_runs() -> None:
    expected = {"api", "worker", "agent", "temporal", "traefik", "registry", "redis", "prometheus"}
    assert set(SERVICES) == {f"dockyard-{name}.service" for name in expected}
    assert "dockyard.target" in UNITS


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_crashed_service_is_always_started_again_with_a_delay(name: str) -> None:
    unit = SERVICES[name]
    assert values(unit, "Service", "Restart") == ["always"]
    assert len(values(unit, "Service", "RestartSec")) == 1
    assert values(unit, "Service", "RestartMaxDelaySec") == ["30s"]
    assert values(unit, "Unit", "StartLimitIntervalSec") == ["0"], "systemd must never give up on it"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_no_unit_stops_another_when_it_stops_or_fails(name: str) -> None:
    for key in ("Requires", "Requisite", "BindsTo"):
        assert values(UNITS[name], "Unit", key) == [], f"{name}: {key}= would stop it with another unit"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_ordering_names_only_known_units(name: str) -> None:
    unit = UNITS[name]
    named = set().union(*(words(unit, "Unit", key) for key in ("After", "Wants", "PartOf", "Conflicts")))
    named |= words(unit, "Install", "WantedBy")
    assert named - set(UNITS) - EXTERNAL_UNITS == set()


def test_the_target_starts_every_control_plane_service_and_they_start_with_it() -> None:
    control_plane = set(SERVICES) - {AGENT}
    assert words(UNITS["dockyard.target"], "Unit", "Wants") == control_plane
    for name in control_plane:
        assert words(SERVICES[name], "Install", "WantedBy") == {"dockyard.target"}, name
        assert words(SERVICES[name], "Unit", "PartOf") == {"dockyard.target"}, name
    # The agent runs on every node, control plane or not.
    assert words(SERVICES[AGENT], "Install", "WantedBy") == {"multi-user.target"}


def test_settings_and_secrets_come_from_environment_files() -> None:
    for name in ("dockyard-api.service", "dockyard-worker.service", "dockyard-traefik.service"):
        files = values(SERVICES[name], "Service", "EnvironmentFile")
        assert files == ["/etc/dockyard/dockyard.env", "/etc/dockyard/secrets.env"], name
    assert values(SERVICES[AGENT], "Service", "EnvironmentFile") == ["/etc/dockyard/agent.env"]


def commands() -> list[tuple[str, list[str]]]:
    return [
        (name, shlex.split(value))
        for name, unit in SERVICES.items()
        for key in ("ExecStartPre", "ExecStart")
        for value in values(unit, "Service", key)
    ]


@pytest.mark.parametrize(("name", "argv"), commands(), ids=[f"{n}: {a[0]}" for n, a in commands()])
def test_each_command_exists(name: str, argv: list[str]) -> None:
    program, *args = argv
    venv_bin = f"{INSTALL_ROOT}/.venv/bin/"
    if program == venv_bin + "dockyard":
        assert args[0] in typer.main.get_command(app).commands, f"{name}: no `dockyard {args[0]}`"  # type: ignore[attr-defined]
    elif program == venv_bin + "python":
        assert args[:2] == ["-m", "cli.render"] and args[2] in RENDERERS, f"{name}: {args}"
    elif program.startswith(venv_bin):
        pip = {p.name for p in PROGRAMS if p.source is Source.PIP}
        assert program.removeprefix(venv_bin) in pip, f"{name}: {program} is not installed into the venv"
    elif program.startswith(INSTALL_ROOT + "/"):
        script = REPO_ROOT / program.removeprefix(INSTALL_ROOT + "/")
        assert script.is_file() and os.access(script, os.X_OK), f"{name}: {script} is not executable"
    else:
        listed = {p.name for p in PROGRAMS if p.source is Source.APT}
        assert Path(program).name in listed, f"{name}: {program} is not in core/programs.py"


def test_the_rendered_configs_carry_the_settings(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DOCKYARD_STATE_DIR": str(tmp_path / "state"),
        "DOCKYARD_API_TOKEN": "api-secret",
        "DOCKYARD_REGISTRY_PASSWORD": "registry-secret",
        "DOCKYARD_PUBLIC_API_URL": "http://10.0.0.5:7800",
        "DOCKYARD_EDGE_HTTP_URL": "http://0.0.0.0:80",
        "DOCKYARD_EDGE_HTTPS_URL": "https://0.0.0.0:443",
    }
    for kind in RENDERERS:
        done = subprocess.run(
            [sys.executable, "-m", "cli.render", kind, str(tmp_path / kind)],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    traefik = (tmp_path / "traefik" / "traefik.yml").read_text()
    assert 'endpoint: "http://10.0.0.5:7800/internal/traefik/config"' in traefik
    assert 'Authorization: "Bearer api-secret"' in traefik
    assert 'address: "0.0.0.0:80"' in traefik
    assert (tmp_path / "registry" / "registry.htpasswd").read_text().startswith("dockyard:$2b$")
    assert oct((tmp_path / "traefik" / "traefik.yml").stat().st_mode & 0o777) == "0o600"

    missing = subprocess.run(
        [sys.executable, "-m", "cli.render", "traefik", str(tmp_path / "x")],
        env={k: v for k, v in env.items() if k != "DOCKYARD_API_TOKEN"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "DOCKYARD_API_TOKEN" in missing.stderr


# systemd before 254 does not know these two (the units back off from RestartSec alone there).
NEWER_KEYS = re.compile(r"Unknown key '(RestartSteps|RestartMaxDelaySec)' in section \[Service\]")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """Verified as installed in this checkout (systemd checks that each ExecStart is executable)."""
    for name in UNITS:
        text = (UNITS_DIR / name).read_text().replace(INSTALL_ROOT, str(REPO_ROOT))
        (tmp_path / name).write_text(text)
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    complaints = [
        line for line in (verified.stdout + verified.stderr).splitlines() if not NEWER_KEYS.search(line)
    ]
    assert verified.returncode == 0 and complaints == [], "\n".join(complaints)
