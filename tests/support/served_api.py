"""The API app over HTTP on a loopback port, in a process of its own, for tests that drive it from
outside (the CLI through typer's CliRunner). Its own process, not a thread of the test's: CPython 3.11
can fail compiling in two threads at once (`SystemError: AST constructor recursion depth mismatch`),
which the CLI's lazy imports beside the server's did.

`python -m tests.support.served_api` reads the pickled Settings on stdin and serves them."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from core.settings import Settings
from tests.support.components import REPO_ROOT, wait_until
from tests.support.platform import process_env
from tests.support.registry import free_port


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def served_api(settings: Settings, log_path: Path) -> Iterator[str]:
    """Serve `settings` (on a free loopback port) until the block ends; yields the API's URL."""
    port = free_port()
    settings = settings.model_copy(update={"api_host": "127.0.0.1", "api_port": port})
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.support.served_api"],
            env=process_env({}),
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        assert server.stdin is not None
        server.stdin.write(pickle.dumps(settings))
        server.stdin.close()

        def started() -> bool:
            if server.poll() is not None:
                raise RuntimeError(f"the API exited with {server.returncode}: {log_path.read_text()[-2000:]}")
            return _healthy(url)

        wait_until(started, 60, "the API")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    import uvicorn

    from api.main import create_app

    settings: Settings = pickle.load(sys.stdin.buffer)
    uvicorn.run(
        create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning", ws="none"
    )


if __name__ == "__main__":
    main()
