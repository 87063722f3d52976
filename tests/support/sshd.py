"""A real OpenSSH server on a free loopback port, letting in one public key, for tests of git over SSH.

with SshServer(authorized_key=public_key) as sshd:
    url = sshd.url(bare_repository)  # ssh://<this user>@127.0.0.1:<port>/<path>, cloned with the private half

Its host key, configuration, authorized key and pid file live in its own temporary directory. It logs in
as the user running the tests (root, when that is who runs them) with that key only: no passwords, no PAM.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from tests.support import missing_component
from tests.support.process import LoopbackServer, LoopbackServerError, free_port

SSHD_BINARY = "/usr/sbin/sshd"
# Where sshd running as root insists on its privilege-separation directory (compiled in); Debian's
# service creates it at boot, a test machine that never started the service may lack it.
PRIVSEP_DIR = Path("/run/sshd")


class SshServerError(LoopbackServerError):
    pass


class SshServer(LoopbackServer):
    """`sshd -D -e -f <own config>` on 127.0.0.1:<free port>; ready once it sends its SSH banner."""

    name = "sshd"
    slug = "sshd"
    error = SshServerError

    def __init__(self, authorized_key: str, start_timeout_seconds: float = 10.0) -> None:
        super().__init__(start_timeout_seconds)
        self.authorized_key = authorized_key
        self.user = getpass.getuser()
        self.port = 0

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path.resolve()}"

    def start(self) -> Self:
        for program in (SSHD_BINARY, shutil.which("ssh-keygen")):
            if program is None or not Path(program).is_file():
                missing_component(f"{program or 'ssh-keygen'} not found (apt-get install openssh-server)")
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        return super().start()

    def command(self, root: Path) -> list[str]:
        self.port = free_port()
        host_key = root / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dockyard-test-sshd", "-f", str(host_key)],
            check=True,
            capture_output=True,
        )
        authorized_keys = root / "authorized_keys"
        authorized_keys.write_text(self.authorized_key.strip() + "\n")
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {host_key}",
                    f"PidFile {root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized_keys}",
                    f"AllowUsers {self.user}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",  # the temporary directory's modes are not ~/.ssh's
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        # An absolute path: sshd re-executes itself for every connection.
        return [SSHD_BINARY, "-D", "-e", "-f", str(config)]

    def stop(self) -> None:
        # sshd leaves the sessions it forked running when it stops (a restart keeps them); let the last
        # ones (a connection closes a moment after its client exits) end and be reaped by it first.
        if self._process is not None:
            deadline = time.monotonic() + self.stop_timeout_seconds
            while _children(self._process.pid) and time.monotonic() < deadline:
                time.sleep(self.poll_seconds)
        super().stop()

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: field 4 of stat, after the parenthesized name)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children
