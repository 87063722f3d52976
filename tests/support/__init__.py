"""Reusable test helpers over real components (Docker Engine, Docker Distribution).

Plain classes and functions, no fixtures: conftest files and test modules wrap them.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

DOCKER_HOST = "unix:///var/run/docker.sock"


def missing_component(reason: str) -> NoReturn:
    """A real component a test needs is absent: fail in CI (CI=true), skip on a developer's machine."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: real components are required, never skipped)", pytrace=False)
    pytest.skip(reason)
