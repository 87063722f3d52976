"""The loopback git server that git-driven deploy tests push to: clone, push, fetch, private repos, stop."""

from __future__ import annotations

import base64
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.git_server import GitError, GitServer, WorkingCopy, run_git

CREDENTIALS = ("deploy-bot", "t0ken/with:odd+chars")


@pytest.fixture
def server() -> Iterator[GitServer]:
    with GitServer() as running:
        yield running


def basic_header(user: str, token: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def test_push_clone_and_fetch(server: GitServer, tmp_path: Path) -> None:
    url = server.create_repo("acme/app")
    assert url == f"{server.base_url}/acme/app.git"
    author = WorkingCopy(tmp_path / "author", url).write({"app.py": "print('v1')\n", "web/index.html": "v1"})
    first = author.commit("v1")
    author.push()

    run_git("clone", "--quiet", url, str(tmp_path / "clone"), cwd=tmp_path)
    clone = tmp_path / "clone"
    assert run_git("rev-parse", "HEAD", cwd=clone).stdout.strip() == first
    assert (clone / "web" / "index.html").read_text() == "v1"

    second = author.write({"app.py": "print('v2')\n"}).commit("v2")
    author.push()
    run_git("fetch", "--quiet", "origin", cwd=clone)
    assert run_git("rev-parse", "origin/main", cwd=clone).stdout.strip() == second
    assert run_git("log", "-1", "--format=%an <%ae>|%s", "origin/main", cwd=clone).stdout.strip() == (
        "Dockyard Test <test@dockyard.invalid>|v2"
    )


def test_branches_and_exact_commits(server: GitServer, tmp_path: Path) -> None:
    url = server.create_repo("app")
    author = WorkingCopy(tmp_path / "author", url, name="Ada", email="ada@example.test")
    first = author.write({"a": "1"}).commit("one")
    author.push("main")
    feature = author.branch("feature/x").write({"b": "2"}).commit("two")
    author.push()

    heads = run_git("ls-remote", "--heads", url, cwd=tmp_path).stdout
    assert f"{first}\trefs/heads/main" in heads
    assert f"{feature}\trefs/heads/feature/x" in heads

    # A deploy fetches the exact commit it was asked for, even once the branch has moved on.
    author.write({"b": "3"}).commit("three")
    author.push()
    target = WorkingCopy(tmp_path / "deploy")
    target.git("fetch", "--quiet", "--depth=1", url, feature)
    assert target.sha("FETCH_HEAD") == feature

    # A forced push rewrites the branch.
    author.git("reset", "--quiet", "--hard", first)
    author.push("feature/x", force=True)
    assert f"{first}\trefs/heads/feature/x" in run_git("ls-remote", url, cwd=tmp_path).stdout


def test_a_private_repository_refuses_anonymous_clones(server: GitServer, tmp_path: Path) -> None:
    url = server.create_repo("acme/private", credentials=CREDENTIALS)

    result = run_git("clone", url, str(tmp_path / "anonymous"), cwd=tmp_path, check=False)

    assert result.returncode != 0
    assert "could not read Username" in result.stderr  # git's answer to a 401 when it may not prompt
    assert ("GET", "/acme/private.git/info/refs?service=git-upload-pack", 401) in server.requests
    assert not (tmp_path / "anonymous").exists()


def test_a_private_repository_accepts_its_credentials(server: GitServer, tmp_path: Path) -> None:
    server.create_repo("acme/private", credentials=CREDENTIALS)
    with_token = server.url("acme/private", CREDENTIALS)
    author = WorkingCopy(tmp_path / "author", with_token).write({"secret.txt": "s"})
    sha = author.commit("private")
    author.push("main")

    header = basic_header(*CREDENTIALS)
    run_git("-c", f"http.extraHeader={header}", "clone", "--quiet", server.url("acme/private"), "by-header",
            cwd=tmp_path)  # fmt: skip
    run_git("clone", "--quiet", with_token, "by-url", cwd=tmp_path)

    for clone in ("by-header", "by-url"):
        assert run_git("rev-parse", "HEAD", cwd=tmp_path / clone).stdout.strip() == sha


@pytest.mark.parametrize(
    "credentials",
    [("deploy-bot", "wrong"), ("someone", CREDENTIALS[1])],
    ids=["wrong-token", "wrong-user"],
)
def test_a_private_repository_refuses_wrong_credentials(
    server: GitServer, tmp_path: Path, credentials: tuple[str, str]
) -> None:
    server.create_repo("private", credentials=CREDENTIALS)
    result = run_git("ls-remote", server.url("private", credentials), cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert server.requests[-1][2] == 401


def test_anonymous_pushes_to_a_private_repository_are_refused(server: GitServer, tmp_path: Path) -> None:
    url = server.create_repo("private", credentials=CREDENTIALS)
    author = WorkingCopy(tmp_path / "author", url).write({"a": "1"})
    author.commit("one")
    with pytest.raises(GitError, match="could not read Username"):
        author.push("main")
    assert ("GET", "/private.git/info/refs?service=git-receive-pack", 401) in server.requests


def test_public_repositories_stay_public_next_to_private_ones(server: GitServer, tmp_path: Path) -> None:
    server.create_repo("acme/private", credentials=CREDENTIALS)
    public = server.create_repo("acme/private-docs")
    author = WorkingCopy(tmp_path / "author", public).write({"a": "1"})
    author.commit("one")
    author.push("main")
    assert "refs/heads/main" in run_git("ls-remote", public, cwd=tmp_path).stdout


def test_unknown_repositories_are_not_found(server: GitServer, tmp_path: Path) -> None:
    result = run_git("ls-remote", server.url("nowhere"), cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert server.requests[-1][2] == 404


@pytest.mark.parametrize("name", ["../escape", "/abs", "a//b", "", "a b"])
def test_repository_names_stay_inside_the_server(server: GitServer, name: str) -> None:
    with pytest.raises(ValueError, match="repository name"):
        server.create_repo(name)


def children_of_this_process() -> set[str]:
    tasks = Path(f"/proc/{os.getpid()}/task")
    assert tasks.is_dir(), f"{tasks} is missing: the test needs /proc to list child processes"
    return {pid for task in tasks.iterdir() for pid in (task / "children").read_text().split()}


def test_stop_leaves_no_thread_process_port_or_file(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())
    children_before = children_of_this_process()

    server = GitServer().start()
    port = int(server.base_url.rsplit(":", 1)[1])
    root = server.root
    url = server.create_repo("app")
    author = WorkingCopy(tmp_path / "author", url).write({"a": "1"})
    author.commit("one")
    author.push("main")
    assert server.base_url.startswith("http://127.0.0.1:")
    server.stop()

    assert set(threading.enumerate()) == threads_before
    assert children_of_this_process() <= children_before
    assert not root.exists()
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))
    server.stop()  # stopping twice is harmless


def test_a_push_larger_than_gits_post_buffer(server: GitServer, tmp_path: Path) -> None:
    """git sends bodies over `http.postBuffer` (1 MiB) with chunked transfer encoding."""
    url = server.create_repo("big")
    author = WorkingCopy(tmp_path / "author", url)
    (author.path / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    sha = author.commit("big")
    author.push("main")
    assert run_git("ls-remote", url, "main", cwd=tmp_path).stdout.split()[0] == sha
