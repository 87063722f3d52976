"""What the planner raises: messages a user can act on (what was looked for, where, how to fix it)."""

from __future__ import annotations


class PlanError(Exception):
    """The repository cannot be planned; `message` says what was looked for and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(PlanError):
    """A malformed configuration or manifest file: which file, which key, and why.

    `key` is a dotted path inside the file (`phases.build.cmds`), or "" when the whole file is unreadable.
    """

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(f"{file}: {key}: {reason}" if key else f"{file}: {reason}")
