"""prepare_source against real git repositories on this machine (cloned through file:// URLs), and an
upload served over HTTP on loopback."""

from __future__ import annotations

import io
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.sources import DiscardSource, PreparedSource, PrepareSource, SourceActivities
from core.contracts import BuildOptions, SourceSpec
from core.planner import BaseImages
from core.settings import Settings, load_settings


def git(repo: Path, *args: str, author: str = "t", email: str = "t@t") -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
        env={"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"},
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    (path / "index.html").write_text("<h1>v1</h1>")
    (path / "api").mkdir()
    (path / "api" / "Dockerfile").write_text("FROM scratch\n")
    git(path, "add", ".")
    git(path, "commit", "--quiet", "-m", "v1")
    return path


@pytest.fixture
def sources(tmp_path: Path) -> SourceActivities:
    settings: Settings = load_settings(state_dir=tmp_path / "state", api_token="t")
    return SourceActivities(settings, BaseImages.uniform("registry.test/dockyard/debian:bookworm"))


async def prepare(sources: SourceActivities, source: SourceSpec, **build: str) -> PreparedSource:
    request = PrepareSource(
        deployment_id="dep_1", service_id="svc_1", source=source, build=BuildOptions.model_validate(build)
    )
    result: PreparedSource = await ActivityEnvironment().run(sources.prepare_source, request)
    return result


async def test_a_branch_is_cloned_and_planned(sources: SourceActivities, repo: Path) -> None:
    prepared = await prepare(sources, SourceSpec(kind="repo", repo_url=f"file://{repo}", ref="main"))

    assert prepared.builder == "planner"
    assert prepared.commit_sha == git(repo, "rev-parse", "HEAD")
    assert (prepared.commit_message, prepared.commit_author) == ("v1", "t <t@t>")
    assert (Path(prepared.context_dir) / "index.html").read_text() == "<h1>v1</h1>"
    assert (
        prepared.dockerfile is not None
        and "FROM registry.test/dockyard/debian:bookworm" in prepared.dockerfile
    )
    assert prepared.host_queue.startswith("dockyard-builds-")


async def test_a_commit_is_checked_out_exactly(sources: SourceActivities, repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    (repo / "index.html").write_text("<h1>v2</h1>")
    git(repo, "commit", "--quiet", "-am", "v2")

    prepared = await prepare(sources, SourceSpec(kind="repo", repo_url=f"file://{repo}", ref=first))

    assert (prepared.commit_sha, prepared.commit_message) == (first, "v1")
    assert (Path(prepared.context_dir) / "index.html").read_text() == "<h1>v1</h1>"


@pytest.mark.parametrize(
    ("message", "subject"),
    [
        pytest.param("Fix the checkout page\n\nThe total was off.", "Fix the checkout page", id="body"),
        pytest.param("First line\nsecond line of the same paragraph", "First line", id="first-line-only"),
        pytest.param("x" * 600, "x" * 500, id="long-subject-cut"),
        pytest.param("", None, id="empty-message"),
    ],
)
async def test_the_commit_subject_and_author_are_recorded(
    sources: SourceActivities, repo: Path, message: str, subject: str | None
) -> None:
    git(repo, "commit", "--quiet", "--allow-empty", "--allow-empty-message", "-m", message,
        author="Zoë Ångström", email="zoe@example.com")  # fmt: skip

    prepared = await prepare(sources, SourceSpec(kind="repo", repo_url=f"file://{repo}", ref="main"))

    assert (prepared.commit_message, prepared.commit_author) == (subject, "Zoë Ångström <zoe@example.com>")


async def test_a_root_directory_with_a_dockerfile_uses_it(sources: SourceActivities, repo: Path) -> None:
    prepared = await prepare(
        sources, SourceSpec(kind="repo", repo_url=f"file://{repo}"), root_directory="api"
    )

    assert (prepared.builder, prepared.dockerfile_path, prepared.dockerfile) == (
        "dockerfile",
        "Dockerfile",
        None,
    )
    assert prepared.context_dir.endswith("/src/api")


async def test_a_retry_answers_the_same_without_cloning_again(sources: SourceActivities, repo: Path) -> None:
    source = SourceSpec(kind="repo", repo_url=f"file://{repo}", ref="main")
    first = await prepare(sources, source)
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "later")

    assert await prepare(sources, source) == first


@pytest.mark.parametrize(
    ("source", "build", "message"),
    [
        (SourceSpec(kind="repo", repo_url="file:///nonexistent/repo"), {}, "git clone failed"),
        (SourceSpec(kind="repo", repo_url="REPO", ref="no-such-branch"), {}, "git checkout failed"),
        (
            SourceSpec(kind="repo", repo_url="REPO"),
            {"root_directory": "../.."},
            "leaves the source directory",
        ),
        (SourceSpec(kind="repo", repo_url="REPO"), {"root_directory": "missing"}, "is not a directory"),
    ],
    ids=["bad-url", "bad-ref", "root-escape", "root-missing"],
)
async def test_bad_sources_fail_with_the_reason_and_leave_no_work_directory(
    sources: SourceActivities, repo: Path, source: SourceSpec, build: dict[str, str], message: str
) -> None:
    if source.repo_url == "REPO":
        source = source.model_copy(update={"repo_url": f"file://{repo}"})

    with pytest.raises(ApplicationError) as error:
        await prepare(sources, source, **build)

    assert message in error.value.message
    assert error.value.non_retryable
    assert not (sources.settings.builds_dir / "dep_1").exists()


async def test_discard_removes_the_work_directory(sources: SourceActivities, repo: Path) -> None:
    await prepare(sources, SourceSpec(kind="repo", repo_url=f"file://{repo}"))

    await ActivityEnvironment().run(sources.discard_source, DiscardSource(deployment_id="dep_1"))

    assert not (sources.settings.builds_dir / "dep_1").exists()


@pytest.fixture
def nixpacks_sources(tmp_path: Path) -> SourceActivities:
    """DOCKYARD_BUILD_PLANNER=nixpacks on a builder without nixpacks (none can be installed here)."""
    settings = load_settings(
        state_dir=tmp_path / "state",
        api_token="t",
        build_planner="nixpacks",
        build_nixpacks_binary=str(tmp_path / "bin" / "nixpacks"),
    )
    return SourceActivities(settings, BaseImages.uniform("registry.test/dockyard/debian:bookworm"))


async def test_the_nixpacks_planner_without_its_binary_fails_clearly(
    nixpacks_sources: SourceActivities, repo: Path, tmp_path: Path
) -> None:
    with pytest.raises(ApplicationError) as error:
        await prepare(nixpacks_sources, SourceSpec(kind="repo", repo_url=f"file://{repo}"))

    assert (error.value.type, error.value.non_retryable) == ("PlanFailed", True)
    assert error.value.message.startswith(
        f"DOCKYARD_BUILD_PLANNER=nixpacks, but the nixpacks binary '{tmp_path}/bin/nixpacks'"
        " (DOCKYARD_BUILD_NIXPACKS_BINARY) is not on this builder's PATH"
    )
    assert not (nixpacks_sources.settings.builds_dir / "dep_1").exists()


async def test_the_nixpacks_planner_leaves_dockerfile_builds_alone(
    nixpacks_sources: SourceActivities, repo: Path
) -> None:
    prepared = await prepare(
        nixpacks_sources, SourceSpec(kind="repo", repo_url=f"file://{repo}"), root_directory="api"
    )

    assert (prepared.builder, prepared.dockerfile_path) == ("dockerfile", "Dockerfile")


@pytest.fixture
def upload_server(tmp_path: Path) -> Iterator[str]:
    """Serves a source tarball at /internal/sources/<any id>, as the API does to builders."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        page = b"<h1>uploaded</h1>"
        member = tarfile.TarInfo("index.html")
        member.size = len(page)
        tar.addfile(member, io.BytesIO(page))
    body = archive.getvalue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_an_upload_has_no_commit(tmp_path: Path, upload_server: str) -> None:
    settings = load_settings(state_dir=tmp_path / "state", api_token="t", public_api_url=upload_server)
    sources = SourceActivities(settings, BaseImages.uniform("registry.test/dockyard/debian:bookworm"))

    prepared = await prepare(sources, SourceSpec(kind="upload", upload_id="upl_1"))

    assert (Path(prepared.context_dir) / "index.html").read_text() == "<h1>uploaded</h1>"
    assert (prepared.commit_sha, prepared.commit_message, prepared.commit_author) == (None, None, None)
