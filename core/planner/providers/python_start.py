"""How a Python app starts: Django, FastAPI and Flask conventions, then main.py / app.py / a module."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.planner.errors import PlanError
from core.planner.source import SourceTree

DEPENDENCY_FILES = ("requirements.txt", "pyproject.toml", "Pipfile", "setup.py", "setup.cfg")
FASTAPI_MODULES = ("main.py", "app.py", "app/main.py", "api.py", "server.py")
FLASK_MODULES = ("app.py", "main.py", "wsgi.py", "application.py", "server.py")
_WSGI = re.compile(r"""WSGI_APPLICATION\s*=\s*["'](.*)\.application["']""")


@dataclass(frozen=True)
class Dependencies:
    """Declared dependencies as lower-case text of the manifests (Nixpacks' `uses_dep`, by whole name)."""

    text: str

    @classmethod
    def read(cls, app: SourceTree) -> Dependencies:
        names = [*(requirement_files(app) or ["requirements.txt"]), *DEPENDENCY_FILES[1:]]
        return cls("\n".join(app.read_text(name) for name in names).lower())

    def uses(self, name: str) -> bool:
        return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", self.text) is not None


def start_cmd(app: SourceTree, deps: Dependencies, module: str | None) -> str | None:
    if app.has_file("manage.py") and deps.uses("django"):
        return django_start(app, deps)
    fastapi = deps.uses("fastapi") and (
        deps.uses("uvicorn") or "fastapi[standard]" in deps.text or "fastapi[all]" in deps.text
    )
    if fastapi and (target := _app_object(app, FASTAPI_MODULES, "FastAPI")):
        return f"uvicorn {target} --host 0.0.0.0 --port $PORT"
    if deps.uses("flask") and (target := _app_object(app, FLASK_MODULES, "Flask")):
        if deps.uses("gunicorn"):
            return f"gunicorn {target}"
        return f"flask --app {target} run --host 0.0.0.0 --port $PORT"
    for script in ("main.py", "app.py"):
        if app.has_file(script):
            return f"python {script}"
    if module and (app.has_file(f"{module}/__main__.py") or app.has_file(f"src/{module}/__main__.py")):
        return f"python -m {module}"
    if module and app.has_file(f"{module}.py"):
        return f"python -m {module}"
    return None


def django_start(app: SourceTree, deps: Dependencies) -> str:
    """Migrate, then gunicorn on the WSGI application (Django's own server without gunicorn)."""
    if not deps.uses("gunicorn"):
        return "python manage.py migrate && python manage.py runserver 0.0.0.0:$PORT"
    for name in app.glob("*.py"):
        if match := _WSGI.search(app.read_text(name)):
            return f"python manage.py migrate && gunicorn {match.group(1)}"
    raise PlanError(
        "Django app: no WSGI_APPLICATION setting found in any .py file; add "
        "WSGI_APPLICATION = '<project>.wsgi.application' to settings.py, or set a start command"
    )


def _app_object(app: SourceTree, modules: tuple[str, ...], factory: str) -> str | None:
    """`module:variable` of the first `variable = Factory(` in the conventional modules."""
    pattern = re.compile(rf"^(\w+)\s*(?::[^=\n]*)?=\s*{factory}\(", re.M)
    for name in modules:
        if match := pattern.search(app.read_text(name)):
            return f"{name.removesuffix('.py').replace('/', '.')}:{match.group(1)}"
    return None


def requirement_files(app: SourceTree) -> list[str] | None:
    """requirements.txt and the files it includes (-r/-c); None when it installs local paths (-e ., ./pkg)."""
    files, queue = [], ["requirements.txt"]
    while queue:
        name = queue.pop(0)
        if name in files or not app.has_file(name):
            continue
        files.append(name)
        folder = name.rpartition("/")[0]
        for line in app.read_text(name).splitlines():
            line = line.split(" #")[0].strip()
            if re.match(r"(-e|--editable)\s|\.{1,2}(/|$)|file:", line):
                return None
            if match := re.match(r"(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)", line):
                queue.append(f"{folder}/{match.group(1)}" if folder else match.group(1))
    return files
