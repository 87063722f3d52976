"""Shared helpers for planner tests: fixture repositories and small repositories written on the fly."""

from __future__ import annotations

from pathlib import Path

from core.planner import BuildPlan, plan_build

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "repos"


def fixture(name: str) -> Path:
    path = FIXTURES / name
    assert path.is_dir(), f"missing fixture repository {path}"
    return path


def plan_of(name: str, **env: str) -> BuildPlan:
    return plan_build(fixture(name), env)


def write_repo(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def cmds(plan: BuildPlan, phase: str) -> list[str]:
    return plan.phases[phase].cmds if phase in plan.phases else []
