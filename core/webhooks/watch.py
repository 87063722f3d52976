"""Watch patterns (Railway's `watchPatterns`): does a push change a file this service cares about?

Patterns are gitignore-style globs matched against repository paths, always from the repository root (a
service's root directory does not move them), and they select files to watch rather than to ignore:

- `*` and `?` stay within one path segment, `[abc]`, `[a-z]`, `[!abc]` match one character of a segment;
- `**` matches across segments (`/src/**/*.ts`, `**/*.md`, and Railway's own `/app/**.js`);
- a leading `/`, or a `/` inside the pattern, anchors it to the root; otherwise it matches at any depth;
- a trailing `/` matches directories only; a pattern that matches a directory matches every file below it;
- `!` excludes what earlier patterns matched; the last pattern matching a path decides (`\\!`, `\\#` escape);
- blank entries and `#` comments are skipped; surrounding whitespace is trimmed.

Unlike .gitignore, a `!` pattern also applies inside a directory that an earlier pattern matched (git cannot
re-include a file whose directory is excluded): every pattern is compared with every changed path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    negated: bool
    directories_only: bool

    def matches(self, path: str) -> bool:
        parts = path.split("/")
        candidates = ["/".join(parts[:end]) for end in range(1, len(parts))]  # the ancestor directories
        if not self.directories_only:
            candidates.append(path)
        return any(self.regex.fullmatch(candidate) for candidate in candidates)


def matches_watch_patterns(patterns: Sequence[str], changed: Iterable[str] | None) -> bool:
    """True when a push that changed `changed` should deploy: no patterns, unknown changes (None), or a
    changed path whose last matching pattern is not an exclusion."""
    compiled = [pattern for text in patterns if (pattern := _compile(text)) is not None]
    if not compiled or changed is None:
        return True
    return any(_watched(compiled, path.strip("/")) for path in changed)


def _watched(patterns: list[_Pattern], path: str) -> bool:
    watched = False
    for pattern in patterns:
        if pattern.matches(path):
            watched = not pattern.negated
    return watched


def _compile(text: str) -> _Pattern | None:
    glob = text.strip()
    if not glob or glob.startswith("#"):
        return None
    negated = glob.startswith("!")
    if negated or glob.startswith(("\\!", "\\#")):
        glob = glob[1:]
    directories_only = glob.endswith("/")
    glob = glob.rstrip("/")
    anchored = "/" in glob  # a leading or inner slash
    glob = glob.lstrip("/")
    if not glob:
        return None
    prefix = "" if anchored else "(?:.*/)?"
    return _Pattern(re.compile(prefix + _translate(glob)), negated, directories_only)


def _translate(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (end := _class_end(glob, i)) != -1:
            out.append(_character_class(glob[i + 1 : end]))
            i = end + 1
        elif glob[i] == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def _class_end(glob: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start` (a `]` right after `[`/`[!` is literal), or -1."""
    i = start + 1
    if glob[i : i + 1] in ("!", "^"):
        i += 1
    if glob[i : i + 1] == "]":
        i += 1
    return glob.find("]", i)


def _character_class(body: str) -> str:
    negated = body[:1] in ("!", "^")
    if negated:
        body = body[1:]
    body = body.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"[^/{body}]" if negated else f"(?!/)[{body}]"
