"""A read-only view of the repository being planned: the planner's only I/O.

Paths are relative to the root, `/`-separated. Anything that resolves outside the root (a symlink to the
builder host's files, `..`) is treated as absent, so a crafted upload cannot make the planner read the host.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from core.planner.errors import ConfigError, PlanError

# Never descended into when searching: dependencies, build output and VCS data, not the app's own files.
SKIPPED_DIRS = frozenset(
    {".git", "node_modules", ".venv", "venv", "__pycache__", "vendor", "target", ".next", "dist-newstyle"}
)
MAX_SCAN_FILES = 5000  # a walk stops after this many files: planning must stay fast on huge trees
MAX_READ_BYTES = 1_000_000


class SourceTree:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise PlanError(f"{root}: not a directory; give the path of the repository to build")
        self.root = root.resolve()

    def _path(self, relative: str) -> Path | None:
        path = (self.root / relative).resolve()
        if path != self.root and self.root not in path.parents:
            return None
        return path

    def has_file(self, relative: str) -> bool:
        path = self._path(relative)
        return path is not None and path.is_file()

    def has_dir(self, relative: str) -> bool:
        path = self._path(relative)
        return path is not None and path.is_dir()

    def existing(self, *candidates: str) -> list[str]:
        """The candidates that exist, in the order given; directories get a trailing "/"."""
        return [
            name if self.has_file(name) else f"{name}/"
            for name in candidates
            if self.has_file(name) or self.has_dir(name)
        ]

    def read_text(self, relative: str) -> str:
        """The file's text, or "" when it is absent (callers check presence where it matters)."""
        path = self._path(relative)
        if path is None or not path.is_file():
            return ""
        with path.open("rb") as handle:
            return handle.read(MAX_READ_BYTES).decode("utf-8", errors="replace")

    def read_json(self, relative: str) -> Any:
        try:
            return json.loads(self.read_text(relative))
        except json.JSONDecodeError as exc:
            raise _json_error(relative, exc) from None

    def read_jsonc(self, relative: str) -> Any:
        """JSON with // and /* */ comments (deno.jsonc, tsconfig.json)."""
        text = re.sub(
            r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/',
            lambda m: m.group(1) or "",
            self.read_text(relative),
            flags=re.S,
        )
        text = re.sub(r",(\s*[}\]])", r"\1", text)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _json_error(relative, exc) from None

    def read_toml(self, relative: str) -> dict[str, Any]:
        try:
            return tomllib.loads(self.read_text(relative))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(relative, "", f"invalid TOML: {exc}") from None

    @cached_property
    def files(self) -> list[str]:
        """Every file under the root (skipping dependency and VCS folders), sorted, at most MAX_SCAN_FILES."""
        found: list[str] = []
        for path in self._walk(self.root):
            found.append(path.relative_to(self.root).as_posix())
            if len(found) >= MAX_SCAN_FILES:
                break
        return sorted(found)

    def _walk(self, directory: Path) -> Iterator[Path]:
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name not in SKIPPED_DIRS:
                    yield from self._walk(entry)
            elif entry.is_file():
                yield entry

    def glob(self, pattern: str) -> list[str]:
        """Files matching a shell pattern over the relative path (`*` crosses `/`), sorted."""
        return [name for name in self.files if fnmatch.fnmatchcase(name, pattern)]

    def subdirs(self, relative: str) -> list[str]:
        path = self._path(relative)
        if path is None or not path.is_dir():
            return []
        return sorted(entry.name for entry in path.iterdir() if entry.is_dir() and not entry.is_symlink())

    def search(self, pattern: re.Pattern[str], file_pattern: str) -> str | None:
        """The first file matching `file_pattern` whose text matches `pattern`."""
        for name in self.glob(file_pattern):
            if pattern.search(self.read_text(name)):
                return name
        return None


def _json_error(relative: str, exc: json.JSONDecodeError) -> ConfigError:
    return ConfigError(relative, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
