"""Python: pip, poetry, pdm, uv, pipenv and setuptools projects, installed into a virtualenv at /opt/venv."""

from __future__ import annotations

import re
from typing import Any

from core.planner.environment import PlanEnv
from core.planner.layers import PhaseLayer, PlanLayer, StartLayer
from core.planner.providers import base
from core.planner.providers.python_start import Dependencies, requirement_files, start_cmd
from core.planner.source import SourceTree
from core.planner.versions import major_minor

VENV = "/opt/venv"
CREATE_VENV = f"python3 -m venv --copies {VENV} && . {VENV}/bin/activate"
PIP_CACHE = "/root/.cache/pip"
TOOL_VERSIONS = {"POETRY": "2.1.4", "PDM": "2.22.4", "UV": "0.9.30"}  # installed from PyPI at these pins
DEFAULT_PYTHON = "3.11"  # Debian bookworm's python3
VARIABLES = {
    "PYTHONFAULTHANDLER": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONHASHSEED": "random",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_DEFAULT_TIMEOUT": "100",
}


def python_version(app: SourceTree, env: PlanEnv) -> str:
    """NIXPACKS_PYTHON_VERSION > .python-version > runtime.txt > Pipfile > .tool-versions, as major.minor."""
    candidates = [
        env.config("PYTHON_VERSION"),
        app.read_text(".python-version"),
        app.read_text("runtime.txt"),
        _match(r"python_(?:full_)?version\s*=\s*['\"]([\d.]+)", app.read_text("Pipfile")),
        _match(r"^python\s+([\d.]+)", app.read_text(".tool-versions")),
    ]
    for candidate in candidates:
        if candidate and (version := major_minor(candidate.strip())):
            return version
    return DEFAULT_PYTHON


def _match(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text, re.M)
    return match.group(1) if match else None


def package_manager(app: SourceTree, pyproject: dict[str, Any]) -> str | None:
    if app.has_file("requirements.txt"):
        return "pip"
    if app.has_file("pyproject.toml"):
        if app.has_file("poetry.lock") or "poetry" in pyproject.get("tool", {}):
            return "poetry"
        if app.has_file("pdm.lock"):
            return "pdm"
        if app.has_file("uv.lock"):
            return "uv"
        return "pyproject"
    if app.has_file("Pipfile"):
        return "pipenv"
    if app.has_file("setup.py"):
        return "setup.py"
    return None


def install_phase(app: SourceTree, manager: str | None, pyproject: dict[str, Any]) -> PhaseLayer:
    paths = [f"{VENV}/bin"]
    if manager == "pip":
        command = f"{CREATE_VENV} && pip install -r requirements.txt"
        return base.install([command], requirement_files(app), [PIP_CACHE], paths)
    if manager == "poetry":
        command = (
            f"{CREATE_VENV} && pip install poetry==$NIXPACKS_POETRY_VERSION"
            " && poetry install --only main --no-root --no-interaction --no-ansi"
        )
        files = app.existing("pyproject.toml", "poetry.lock", "poetry.toml")
        return base.install([command], files, [PIP_CACHE, "/root/.cache/pypoetry"], paths)
    if manager == "pdm":
        command = f"{CREATE_VENV} && pip install pdm==$NIXPACKS_PDM_VERSION && pdm install --prod --no-self"
        files = app.existing("pyproject.toml", "pdm.lock")
        return base.install([command], files, [PIP_CACHE, "/root/.cache/pdm"], paths)
    if manager == "uv":
        command = (
            f"{CREATE_VENV} && pip install uv==$NIXPACKS_UV_VERSION"
            " && uv sync --no-dev --frozen --no-install-project"
        )
        files = app.existing("pyproject.toml", "uv.lock", ".python-version")
        return base.install([command], files, [PIP_CACHE, "/root/.cache/uv"], paths)
    if manager == "pipenv":
        lock = "--deploy" if app.has_file("Pipfile.lock") else "--skip-lock"
        command = f"{CREATE_VENV} && pip install pipenv && pipenv install {lock}"
        return base.install([command], app.existing("Pipfile", "Pipfile.lock"), [PIP_CACHE], paths)
    if manager == "pyproject":
        dependencies = pyproject.get("project", {}).get("dependencies") or []
        words = " ".join(base.shell_word(dep) for dep in dependencies if isinstance(dep, str))
        command = f"{CREATE_VENV} && pip install {words}" if words else f"python3 -m venv --copies {VENV}"
        return base.install([command], ["pyproject.toml"], [PIP_CACHE], paths)
    if manager == "setup.py":
        return base.install([f"{CREATE_VENV} && pip install ."], None, [PIP_CACHE], paths)
    return base.install([f"python3 -m venv --copies {VENV}"], [], None, paths)


def build_cmds(manager: str | None, pyproject: dict[str, Any]) -> list[str]:
    """Install the project itself once its code is copied, when it is a package with a build system."""
    if "build-system" not in pyproject:
        return []
    if manager == "uv":
        return ["uv sync --no-dev --frozen"]
    if manager == "pyproject":
        return ["pip install --no-deps ."]
    return []


def setup_packages(deps: Dependencies) -> list[str]:
    packages = ["python3", "python3-venv"]
    if deps.uses("psycopg2"):  # the source distribution; psycopg2-binary needs nothing
        packages += ["libpq-dev", "gcc", "python3-dev"]
    if deps.uses("mysqlclient"):
        packages += ["default-libmysqlclient-dev", "pkg-config", "gcc", "python3-dev"]
    return packages


def module_name(pyproject: dict[str, Any]) -> str | None:
    project = pyproject.get("project", {})
    for field in ("packages", "py_modules"):
        if isinstance(project.get(field), list) and project[field]:
            return str(project[field][0])
    name = project.get("name")
    return name.replace("-", "_") if isinstance(name, str) else None


class PythonProvider:
    name = "python"
    detects = "requirements.txt, pyproject.toml, Pipfile, setup.py or main.py (Python)"
    starts = (
        "manage.py (Django), a FastAPI or Flask app in main.py/app.py, main.py, app.py, a __main__ module"
    )

    def detect(self, app: SourceTree, env: PlanEnv) -> bool:
        return bool(app.existing("main.py", "requirements.txt", "pyproject.toml", "Pipfile", "setup.py"))

    def plan(self, app: SourceTree, env: PlanEnv) -> PlanLayer:
        pyproject = app.read_toml("pyproject.toml") if app.has_file("pyproject.toml") else {}
        manager = package_manager(app, pyproject)
        deps = Dependencies.read(app)
        layer = PlanLayer(variables={**VARIABLES, "NIXPACKS_PYTHON_VERSION": python_version(app, env)})
        layer.variables.update(_tool_variables(app, manager))
        layer.phases["setup"] = base.setup(setup_packages(deps))
        layer.phases["install"] = install_phase(app, manager, pyproject)
        caches = ["/root/.cache/uv"] if manager == "uv" else None
        layer.phases["build"] = base.build(build_cmds(manager, pyproject), caches)
        layer.start = StartLayer(cmd=start_cmd(app, deps, module_name(pyproject)))
        return layer


def _tool_variables(app: SourceTree, manager: str | None) -> dict[str, str]:
    if manager not in ("poetry", "pdm", "uv"):
        return {}
    tool = manager.upper()
    pinned = _match(rf"^{manager}\s+([\w.]+)", app.read_text(".tool-versions"))
    variables = {f"NIXPACKS_{tool}_VERSION": pinned or TOOL_VERSIONS[tool]}
    if manager == "uv":
        variables.update(
            UV_PROJECT_ENVIRONMENT=VENV,
            UV_PYTHON=f"{VENV}/bin/python",  # Debian's python; uv must not download another
            UV_PYTHON_DOWNLOADS="never",
            UV_LINK_MODE="copy",  # the cache is a mount: hard links cannot cross into the image
        )
    return variables
