"""The container's start command: a shell, PID 1, that makes SIGTERM stop the app.

`exec <cmd>` is not enough: a PID 1 without its own TERM handler (plain `node server.js`) ignores SIGTERM,
and `migrate && serve` cannot be exec'ed at all. So the command runs as a child of the shell; the shell
traps TERM/INT, sends TERM to its whole process group (the app and anything it started), waits for the app
and exits with the app's status.
"""

from __future__ import annotations

FORWARD_TERM = "trap 'trap - TERM INT; kill -TERM 0 2>/dev/null; wait $!; exit $?' TERM INT"


def start_script(cmd: str) -> str:
    # The newline before ")" keeps a trailing `# comment` in the command from swallowing the parenthesis.
    return f"{FORWARD_TERM}; ( {cmd.strip()}\n) & wait $!"
