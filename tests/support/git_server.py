"""A git server on 127.0.0.1 for tests: bare repositories over smart HTTP, served by `git http-backend`.

    with GitServer() as server:
        url = server.create_repo("acme/app")                            # http://127.0.0.1:<port>/acme/app.git
        private = server.create_repo("acme/secret", credentials=("deploy", "t0ken"))
        repo = WorkingCopy(tmp_path / "work", url).write({"app.py": "..."})
        sha = repo.commit("first")
        repo.push("main")

A repository created with credentials answers 401 to anyone without them (HTTP Basic, user + token), like a
private repository on a provider. Every repository accepts pushes (`http.receivepack`) and fetches of any
reachable commit by sha (`uploadpack.allowReachableSHA1InWant`): how a deploy fetches an exact commit.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote, unquote, urlsplit

from tests.support import missing_component

HOST = "127.0.0.1"
REALM = "dockyard-test-git"
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


class GitError(RuntimeError):
    pass


def git_environment(home: Path) -> dict[str, str]:
    """git that reads no user or system configuration and never prompts (a 401 fails instead of waiting)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }


def run_git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`git <args>` in `cwd`; with `check`, a failure raises GitError carrying git's own message."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=git_environment(cwd), capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}")
    return result


class GitServer:
    """`git http-backend` behind a small threaded HTTP server; stop() leaves no thread, process or file."""

    def __init__(self) -> None:
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> Path:
        assert self._tempdir is not None, "GitServer is not started"
        return Path(self._tempdir.name)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "GitServer is not started"
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request answered so far."""
        assert self._httpd is not None, "GitServer is not started"
        return list(self._httpd.answered)

    def url(self, name: str, credentials: tuple[str, str] | None = None) -> str:
        """The clone URL of repository `name`; with `credentials`, carrying them as `user:token@`."""
        if credentials is None:
            return f"{self.base_url}/{name}.git"
        user, token = (quote(part, safe="") for part in credentials)
        return f"http://{user}:{token}@{self.base_url.removeprefix('http://')}/{name}.git"

    def create_repo(self, name: str, credentials: tuple[str, str] | None = None) -> str:
        """A new empty bare repository (default branch `main`); returns its URL, without the credentials."""
        assert self._httpd is not None, "GitServer is not started"
        if not REPO_NAME.fullmatch(name) or ".." in name:
            raise ValueError(f"repository name {name!r}: letters, digits, . _ - and / between parts only")
        path = self.root / f"{name}.git"
        run_git("init", "--quiet", "--bare", "--initial-branch=main", str(path), cwd=self.root)
        run_git("config", "http.receivepack", "true", cwd=path)
        run_git("config", "uploadpack.allowReachableSHA1InWant", "true", cwd=path)
        if credentials is not None:
            self._httpd.credentials[name] = credentials
        return self.url(name)

    def start(self) -> Self:
        if shutil.which("git") is None:
            missing_component("git not found (apt-get install git)")
        self._tempdir = tempfile.TemporaryDirectory(prefix="dockyard-git-")
        self._httpd = _HTTPServer(self.root)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="git-server"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()  # serve_forever returns
            self._httpd.server_close()  # joins the request threads still running
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close() waits for every request thread

    def __init__(self, root: Path) -> None:
        super().__init__((HOST, 0), _GitHandler)
        self.root = root
        self.credentials: dict[str, tuple[str, str]] = {}
        self.answered: list[tuple[str, str, int]] = []


class _GitHandler(BaseHTTPRequestHandler):
    """One request: check the repository's credentials, run `git http-backend` as CGI, relay its answer."""

    server: _HTTPServer
    timeout = 30  # a stalled client cannot hold stop() forever

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        user = self._authenticated_user(path)
        if user is None:
            self._send(401, [("WWW-Authenticate", f'Basic realm="{REALM}"')], b"")
            return
        body = self._request_body()
        cgi = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=self._cgi_environment(path, url.query, len(body), user),
            capture_output=True,
            timeout=60,
        )
        if cgi.returncode != 0 and not cgi.stdout:
            self._send(500, [], cgi.stderr)
            return
        head, _, payload = cgi.stdout.partition(b"\r\n\r\n")
        lines = [line for line in head.decode("latin-1").split("\r\n") if ":" in line]
        headers = [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]
        status = next((value for name, value in headers if name.lower() == "status"), "200")
        self._send(int(status.split()[0]), [(n, v) for n, v in headers if n.lower() != "status"], payload)

    def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _authenticated_user(self, path: str) -> str | None:
        """The user a private repository lets in, "" for a public repository, None for a refusal."""
        name = next((name for name in self.server.credentials if path.startswith(f"/{name}.git/")), None)
        if name is None:
            return ""
        user, token = self.server.credentials[name]
        scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return None
        expected = f"{user}:{token}".encode()
        return user if scheme.lower() == "basic" and hmac.compare_digest(given, expected) else None

    def _request_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _cgi_environment(self, path: str, query: str, length: int, user: str) -> dict[str, str]:
        env = {
            **git_environment(self.server.root),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_ADDR": self.client_address[0],
        }
        if user:
            env["REMOTE_USER"] = user
        # git-http-backend gunzips request bodies itself and reads the wire protocol version from these.
        for header in ("Content-Encoding", "Git-Protocol"):
            if value := self.headers.get(header):
                env[f"HTTP_{header.upper().replace('-', '_')}"] = value
        return env

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.answered.append((self.command, self.path, int(code)))

    def log_message(self, format: str, *args: object) -> None:
        pass  # the server's log is `requests`, not stderr


class WorkingCopy:
    """A non-bare repository with its own identity: write files, commit, branch, push to `origin`."""

    def __init__(
        self,
        path: Path,
        origin: str | None = None,
        name: str = "Dockyard Test",
        email: str = "test@dockyard.invalid",
    ) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main")
        self.git("config", "user.name", name)
        self.git("config", "user.email", email)
        if origin is not None:
            self.git("remote", "add", "origin", origin)

    def git(self, *args: str) -> str:
        return run_git(*args, cwd=self.path).stdout.strip()

    def write(self, files: dict[str, str]) -> Self:
        for name, text in files.items():
            file = self.path / name
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text)
        return self

    def commit(self, message: str) -> str:
        """Commit everything in the tree (an empty commit when nothing changed); returns the new sha."""
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.sha()

    def branch(self, name: str) -> Self:
        """Create branch `name` at HEAD and switch to it."""
        self.git("switch", "--quiet", "-c", name)
        return self

    def push(self, branch: str | None = None, force: bool = False) -> None:
        """Push HEAD to `branch` (default: the current branch) on origin."""
        target = branch or self.git("branch", "--show-current")
        self.git("push", "--quiet", *(["--force"] if force else []), "origin", f"HEAD:refs/heads/{target}")

    def sha(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref)
