"""Type checks for configuration values; each failure is a ConfigError naming file, key and reason."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.limits import Range, control_character
from core.planner.errors import ConfigError


class Checker:
    """Checks values read from one file; `key` arguments are dotted paths inside that file."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, key, reason)

    def table(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table of keys, got {_kind(value)}")
        return value

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_kind(value)}")
        if "\n" in value or "\r" in value:
            raise self.fail(key, "expected a single line (join commands with && instead of newlines)")
        if problem := control_character(value):
            raise self.fail(key, problem)
        return value

    def bounded_string(self, key: str, value: Any, max_length: int) -> str:
        text = self.string(key, value)
        if len(text) > max_length:
            raise self.fail(key, f"{len(text)} characters is above the limit of {max_length}")
        return text

    def strings(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(key, "expected a list of strings")
        for item in value:
            self.string(key, item)
        return list(value)

    def scalar(self, key: str, value: Any) -> str:
        """A variable's value: strings as they are, numbers and booleans as TOML writes them."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return self.string(key, value)

    def integer(self, key: str, value: Any, limit: Range) -> int:
        """A whole number within `limit` (core.limits: the API's limit for the same setting)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected a whole number, got {_kind(value)}")
        if value < limit.minimum:
            raise self.fail(key, f"expected a number >= {limit.minimum}, got {value}")
        if value > limit.maximum:
            raise self.fail(key, f"{value} is above the limit of {limit.maximum} ({limit.what})")
        return value

    def known_keys(self, prefix: str, table: dict[str, Any], allowed: Iterable[str]) -> None:
        allowed = sorted(set(allowed))
        for key in table:
            if key not in allowed:
                raise self.fail(_join(prefix, key), f"unknown key; expected one of: {', '.join(allowed)}")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
