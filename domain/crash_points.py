"""A test hook: the API process dies at a named point of a submission, as a crash there would.

Honoured only when DOCKYARD_TEST_CRASH_FILE is set (end-to-end tests set it; nothing else should), and
only while that file exists and names the point: the file is removed, then the process exits at once
(os._exit: no cleanup, no answer to the client, like a SIGKILL), so the restarted API runs on.

Points:
- `before-submit`: the deployment (and the webhook delivery that caused it) is committed; Temporal
  has not been called.
- `after-submit`: Temporal has the deployment; the API has not recorded that it does.
"""

from __future__ import annotations

import os
from pathlib import Path

CRASH_FILE_VARIABLE = "DOCKYARD_TEST_CRASH_FILE"
CRASH_EXIT_CODE = 86
POINTS = ("before-submit", "after-submit")


def crash_point(name: str) -> None:
    assert name in POINTS, name
    path = os.environ.get(CRASH_FILE_VARIABLE)
    if not path:
        return
    try:
        armed = Path(path).read_text().strip()
    except FileNotFoundError:
        return
    if armed != name:
        return
    Path(path).unlink(missing_ok=True)
    os._exit(CRASH_EXIT_CODE)
