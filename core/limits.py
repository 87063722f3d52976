"""What Dockyard accepts from users, defined once.

The API's schemas (api/schemas/), the workflow contracts (core/contracts.py) and the config files
of a repository (railway.toml, railway.json, dockyard.toml: core/planner/service_config.py) check
the same numbers and the same rule for text, so a value the API would refuse cannot arrive
through a file either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a number, and what the number is (for messages)."""

    minimum: int
    maximum: int
    what: str

    def problem(self, value: float) -> str | None:
        """Why `value` is refused, naming the limit it crosses, or None."""
        if value < self.minimum:
            return f"{value} is below the limit of {self.minimum} ({self.what})"
        if value > self.maximum:
            return f"{value} is above the limit of {self.maximum} ({self.what})"
        return None


REPLICAS = Range(1, 100, "replicas of a service")
PORT = Range(1, 65535, "a TCP port")
OVERLAP_SECONDS = Range(0, 3600, "seconds old replicas serve beside new ones")
DRAINING_SECONDS = Range(0, 3600, "seconds between SIGTERM and SIGKILL")
HEALTHCHECK_TIMEOUT_SECONDS = Range(1, 3600, "seconds a deploy waits for healthy replicas")
RESTART_MAX_RETRIES = Range(0, 1000, "restarts of a failing replica")
CPU_MILLIS = Range(10, 1_000_000, "CPU per replica, 1000 = one core")
MEMORY_MB = Range(6, 10_000_000, "MiB per replica")

COMMAND_MAX_LENGTH = 4096  # build, start and pre-deploy commands
PATH_MAX_LENGTH = 255  # root directory, Dockerfile path, health check path
HEALTH_PATH_PATTERN = r"^/[^\s]*$"
WATCH_PATTERNS_MAX = 100
WATCH_PATTERN_MAX_LENGTH = 255
CRON_SCHEDULE_MAX_LENGTH = 255

VARIABLE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
VARIABLE_NAME_MAX_LENGTH = 255
VARIABLE_VALUE_MAX_BYTES = 32 * 1024
# Names Dockyard sets itself, and what to do instead.
RESERVED_VARIABLES = {"PORT": "Dockyard sets it to the service's port (change the service's `port` instead)"}

# C0 control characters and DEL. PostgreSQL refuses NUL in text, git and exec refuse NUL in
# arguments, and the others corrupt logs, Dockerfiles and terminals. Multi-line text (a key, a
# certificate, a variable's value, a commit message) keeps tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_character(text: str, *, multiline: bool = False) -> str | None:
    """Why `text` is refused for holding a control character (which one, where), or None."""
    found = (_CONTROL_IN_LINES if multiline else _CONTROL).search(text)
    if found is None:
        return None
    where = f"the control character U+{ord(found.group()):04X} at position {found.start()}"
    if multiline:
        return (
            f"contains {where}; of the control characters only tab, line feed and carriage return are allowed"
        )
    return f"contains {where}; give one line of printable text"
