"""The layers import only downwards: api → domain → core; activities → domain → core.

The domain layer (domain/) knows nothing of HTTP, and no activity calls Dockyard's own API: the
worker reaches the operations by importing them. httpx in activities is for other programs only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.components import REPO_ROOT

# Who may import what, by top-level name.
FORBIDDEN = {
    "core": {"api", "domain", "activities", "workflows", "fastapi", "starlette"},
    "domain": {"api", "activities", "fastapi", "starlette", "httpx"},
    "activities": {"api", "fastapi", "starlette"},
    "workflows": {"api", "fastapi", "starlette"},
}
# The activities that talk HTTP, and to whom (never to Dockyard's own API but from a builder's host).
HTTP_CLIENTS = {
    "activities/registry.py": "the OCI registry",
    "activities/routing.py": "Traefik's API (is a route served?)",
    "activities/control_plane.py": "Dockyard's own API, from a builder's host (uploads, credentials)",
}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(imported(path) & FORBIDDEN[package])
        for path in modules(package)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_only_the_listed_activities_speak_http() -> None:
    speaking = {
        str(path.relative_to(REPO_ROOT)) for path in modules("activities") if "httpx" in imported(path)
    }
    assert speaking == set(HTTP_CLIENTS)


def test_the_checks_see_the_layers() -> None:
    """Guards the guard: the walk finds the modules and their imports."""
    assert "sqlalchemy" in imported(REPO_ROOT / "domain" / "deployments.py")
    assert all(modules(package) for package in FORBIDDEN)
