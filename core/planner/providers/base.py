"""What every provider implements, and helpers for the phases they build."""

from __future__ import annotations

import shlex
from typing import Protocol

from core.planner.environment import PlanEnv
from core.planner.layers import PhaseLayer, PlanLayer
from core.planner.source import SourceTree

APT_CA = "ca-certificates"


class Provider(Protocol):
    name: str
    # What detection looks for and what start commands it infers: quoted in PlanError messages.
    detects: str
    starts: str

    def detect(self, app: SourceTree, env: PlanEnv) -> bool: ...

    def plan(self, app: SourceTree, env: PlanEnv) -> PlanLayer: ...


def setup(apt_pkgs: list[str], cmds: list[str] | None = None) -> PhaseLayer:
    """Runtimes come from Debian packages (and npm/PyPI installers); no source files are needed for them."""
    return PhaseLayer(apt_pkgs=list(apt_pkgs), cmds=list(cmds or []), only_include_files=[])


def install(
    cmds: list[str],
    files: list[str] | None,
    cache_directories: list[str] | None = None,
    paths: list[str] | None = None,
) -> PhaseLayer:
    """`files`: the dependency manifests to copy before installing (None: the whole tree is needed)."""
    return PhaseLayer(
        depends_on=["setup"],
        cmds=cmds,
        only_include_files=files,
        cache_directories=cache_directories,
        paths=paths,
    )


def build(cmds: list[str], cache_directories: list[str] | None = None) -> PhaseLayer:
    return PhaseLayer(depends_on=["install"], cmds=cmds, cache_directories=cache_directories)


def shell_word(text: str) -> str:
    """Quote for /bin/sh only when needed, so common commands read naturally."""
    return text if text and all(c.isalnum() or c in "@%+=:,./-_" for c in text) else shlex.quote(text)
