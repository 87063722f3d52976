"""Providers in Nixpacks' detection order; the first that detects the repository plans it."""

from __future__ import annotations

from core.planner.providers.base import Provider
from core.planner.providers.deno import DenoProvider
from core.planner.providers.go import GoProvider
from core.planner.providers.node import BunProvider, NodeProvider
from core.planner.providers.php import PhpProvider
from core.planner.providers.python import PythonProvider
from core.planner.providers.ruby import RubyProvider
from core.planner.providers.rust import RustProvider
from core.planner.providers.staticfile import StaticfileProvider

PROVIDERS: tuple[Provider, ...] = (
    DenoProvider(),
    GoProvider(),
    PhpProvider(),
    RubyProvider(),
    BunProvider(),
    NodeProvider(),
    PythonProvider(),
    RustProvider(),
    StaticfileProvider(),
)
BY_NAME = {provider.name: provider for provider in PROVIDERS}

__all__ = ["BY_NAME", "PROVIDERS", "Provider"]
