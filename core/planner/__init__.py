"""Dockyard's build planner: a Nixpacks-compatible plan from a source tree, rendered as a Dockerfile.

Pure code: the only I/O is reading the repository. See README.md for providers and precedence.
"""

from core.planner.dockerfile import render_dockerfile
from core.planner.errors import ConfigError, PlanError
from core.planner.model import BaseImages, BuildPlan, DeployConfig, Phase, StartPhase
from core.planner.plan import plan_build, read_deploy_config, select_builder

__all__ = [
    "BaseImages",
    "BuildPlan",
    "ConfigError",
    "DeployConfig",
    "Phase",
    "PlanError",
    "StartPhase",
    "plan_build",
    "read_deploy_config",
    "render_dockerfile",
    "select_builder",
]
