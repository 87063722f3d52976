"""Private repositories over SSH with a deploy key: the API keeps the key (validated, encrypted, never
returned), and prepare_source clones with it from a real sshd on loopback, leaving no key file behind."""

from __future__ import annotations

import json
import stat
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.git import DEPLOY_KEY_FILE, KNOWN_HOSTS_FILE, GitCredential, _git_credential
from activities.sources import PreparedSource, PrepareSource, SourceActivities
from api.schemas.sources import RepoCredential as CredentialAnswer
from core.contracts import BuildOptions, SourceSpec
from core.db import Database
from core.models import AuditEvent, Service
from core.planner import BaseImages
from core.settings import load_settings
from tests.support.api import api_settings, running_api
from tests.support.process import free_port
from tests.support.sshd import SshServer


class KeyPair:
    """An ed25519 key: the private half as a user pastes it (OpenSSH format), the public half as
    `authorized_keys` and repository hosts take it."""

    def __init__(self, passphrase: bytes | None = None) -> None:
        key = ed25519.Ed25519PrivateKey.generate()
        encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
        self.private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, encryption).decode()
        self.public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


DEPLOY_KEY = KeyPair()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"},
    ).stdout.strip()  # fmt: skip


# --- the builder ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshServer]:
    """Lets in DEPLOY_KEY only, like a host with it as the repository's deploy key."""
    with SshServer(authorized_key=DEPLOY_KEY.public) as server:
        yield server


@pytest.fixture(scope="module")
def private_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare repository (served by sshd to the key holder) with one commit on `main`."""
    root = tmp_path_factory.mktemp("ssh-repos")
    work = root / "work"
    work.mkdir()
    git(work, "init", "--quiet", "--initial-branch=main")
    (work / "index.html").write_text("<h1>private</h1>")
    git(work, "add", ".")
    git(work, "commit", "--quiet", "-m", "private v1")
    bare = root / "private.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(work), str(bare)], check=True)
    return bare


class ControlPlane:
    """The API's credential endpoint on loopback: answers what `answer` holds, records who asked."""

    def __init__(self) -> None:
        self.answer: dict[str, Any] | None = None
        self.requests: list[tuple[str, str]] = []
        self.url = ""


@pytest.fixture
def control_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            plane.requests.append((self.path, self.headers.get("Authorization", "")))
            body = json.dumps(plane.answer or {"detail": "not found"}).encode()
            self.send_response(200 if plane.answer else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    plane.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield plane
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def sources(tmp_path: Path, control_plane: ControlPlane) -> SourceActivities:
    settings = load_settings(state_dir=tmp_path / "state", api_token="t", public_api_url=control_plane.url)
    return SourceActivities(settings, BaseImages.uniform("registry.test/dockyard/debian:bookworm"))


async def prepare(sources: SourceActivities, repo_url: str) -> PreparedSource:
    request = PrepareSource(
        deployment_id="dep_1",
        service_id="svc_1",
        source=SourceSpec(kind="repo", repo_url=repo_url, ref="main", credential=True),
        build=BuildOptions(),
    )
    result: PreparedSource = await ActivityEnvironment().run(sources.prepare_source, request)
    return result


def key_files(sources: SourceActivities) -> list[Path]:
    return list(sources.settings.state_dir.rglob(DEPLOY_KEY_FILE))


def files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def test_a_deploy_key_clones_over_ssh_and_is_removed_after(
    sources: SourceActivities, control_plane: ControlPlane, sshd: SshServer, private_repo: Path
) -> None:
    # The answer the API gives (its own response model), for the builder that reads it.
    control_plane.answer = CredentialAnswer(kind="deploy_key", token=DEPLOY_KEY.private).model_dump()

    prepared = await prepare(sources, sshd.url(private_repo))

    assert prepared.commit_sha == git(private_repo, "rev-parse", "main")
    assert prepared.commit_message == "private v1"
    assert (Path(prepared.context_dir) / "index.html").read_text() == "<h1>private</h1>"
    assert control_plane.requests == [("/internal/services/svc_1/repo-credential", "Bearer t")]
    assert key_files(sources) == []
    # The host key seen first is trusted, in the deployment's own file (discarded with it).
    workdir = sources.settings.builds_dir / "dep_1"
    assert "[127.0.0.1]" in (workdir / KNOWN_HOSTS_FILE).read_text()


async def test_a_wrong_key_fails_with_the_ssh_error_and_leaves_no_key_behind(
    sources: SourceActivities, control_plane: ControlPlane, sshd: SshServer, private_repo: Path
) -> None:
    control_plane.answer = {"kind": "deploy_key", "token": KeyPair().private}

    with pytest.raises(ApplicationError) as error:
        await prepare(sources, sshd.url(private_repo))

    assert (error.value.type, error.value.non_retryable) == ("GitFailed", True)
    assert error.value.message == (
        f"git clone failed: {sshd.user}@127.0.0.1: Permission denied (publickey). "
        "fatal: Could not read from remote repository."
    )
    assert key_files(sources) == []
    assert not (sources.settings.builds_dir / "dep_1").exists()


async def test_the_key_file_is_private_and_removed_even_when_the_clone_fails(tmp_path: Path) -> None:
    credential = GitCredential(kind="deploy_key", secret=DEPLOY_KEY.private.rstrip("\n"))

    with pytest.raises(RuntimeError, match="clone failed"):
        async with _git_credential(credential, "ssh://git@git.test/acme/shop.git", tmp_path) as env:
            key_file = tmp_path / DEPLOY_KEY_FILE
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            assert key_file.read_text() == DEPLOY_KEY.private  # ending in a newline, as ssh needs
            assert f"-i {key_file} " in env["GIT_SSH_COMMAND"]
            raise RuntimeError("clone failed")

    assert files(tmp_path) == []
    assert "secret" not in repr(credential) and DEPLOY_KEY.private not in repr(credential)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"kind": "deploy_key", "token": "KEY"}, GitCredential("deploy_key", "KEY")),
        ({"kind": "token", "token": "t0ken"}, GitCredential("token", "t0ken")),
        ({"token": "t0ken"}, GitCredential("token", "t0ken")),
        (None, None),
    ],
    ids=["deploy-key", "token", "control-plane-before-deploy-keys", "none-stored"],
)
async def test_the_builder_reads_the_credential_kind(
    sources: SourceActivities, control_plane: ControlPlane, answer: dict[str, str] | None, expected: object
) -> None:
    control_plane.answer = answer

    assert await sources._repo_credential("svc_1") == expected


# --- the API -------------------------------------------------------------------------------------

SSH_URL = "git@github.com:acme/private.git"


@pytest.fixture
async def api(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")) as client:
        yield client


async def create(api: httpx.AsyncClient, **fields: object) -> httpx.Response:
    project = await api.get("/v1/projects")
    projects = project.json()
    if not projects:
        projects = [(await api.post("/v1/projects", json={"name": "keys"})).json()]
    return await api.post(f"/v1/projects/{projects[0]['id']}/services", json={"name": "app", **fields})


async def stored(database: Database, service_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    async with database.session() as session:
        service = await session.get(Service, service_id)
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    assert service is not None
    return service.repo_credential, [e.detail for e in events if e.target == service_id]


async def test_a_deploy_key_is_stored_encrypted_and_only_the_builder_reads_it(
    api: httpx.AsyncClient, database: Database
) -> None:
    key = DEPLOY_KEY.private
    response = await create(api, repo_url=SSH_URL, repo_deploy_key=key)
    assert response.status_code == 201, response.text
    service = response.json()

    assert service["has_repo_credential"] is True
    listed = await api.get(f"/v1/projects/{service['project_id']}/services")
    fetched = await api.get(f"/v1/services/{service['id']}")
    assert all(key not in text for text in (response.text, listed.text, fetched.text))
    ciphertext, events = await stored(database, service["id"])
    assert ciphertext is not None and key not in ciphertext and "PRIVATE KEY" not in ciphertext
    assert [(e["repo_token"], e["repo_deploy_key"]) for e in events] == [(None, "********")]
    answer = await api.get(f"/internal/services/{service['id']}/repo-credential")
    assert answer.json() == {"kind": "deploy_key", "token": key}


async def test_a_pasted_key_is_stored_with_unix_line_ends_and_a_final_newline(api: httpx.AsyncClient) -> None:
    pasted = DEPLOY_KEY.private.strip().replace("\n", "\r\n")

    service = (await create(api, repo_url=SSH_URL, repo_deploy_key=f"  {pasted}  ")).json()

    answer = await api.get(f"/internal/services/{service['id']}/repo-credential")
    assert answer.json() == {"kind": "deploy_key", "token": DEPLOY_KEY.private}


async def test_a_token_is_answered_as_a_token(api: httpx.AsyncClient) -> None:
    service = (await create(api, repo_url="https://git.test/acme/app.git", repo_token="t0ken")).json()

    answer = await api.get(f"/internal/services/{service['id']}/repo-credential")
    assert answer.json() == {"kind": "token", "token": "t0ken"}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param(
            {"repo_url": SSH_URL, "repo_deploy_key": DEPLOY_KEY.private, "repo_token": "t0ken"},
            "repo_token and repo_deploy_key: give one repository credential, not both",
            id="both-credentials",
        ),
        pytest.param(
            {"repo_url": "https://github.com/acme/private.git", "repo_deploy_key": DEPLOY_KEY.private},
            "repo_url: a deploy key clones over SSH; give an ssh:// or git@host:path URL "
            "(got 'https://github.com/acme/private.git')",
            id="https-url",
        ),
        pytest.param(
            {"repo_deploy_key": DEPLOY_KEY.private},
            "repo_url: a deploy key clones over SSH",
            id="no-repository",
        ),
        pytest.param(
            {"repo_url": SSH_URL, "repo_deploy_key": KeyPair(passphrase=b"hunter22").private},
            "repo_deploy_key: Value error, the key is protected by a passphrase",
            id="passphrase",
        ),
        pytest.param(
            {"repo_url": SSH_URL, "repo_deploy_key": DEPLOY_KEY.public},
            "repo_deploy_key: Value error, this is a public key: give its private half",
            id="public-half",
        ),
        pytest.param(
            {"repo_url": SSH_URL, "repo_deploy_key": "ghp_not-a-key"},
            "repo_deploy_key: Value error, not a private key",
            id="not-a-key",
        ),
        pytest.param(
            {"repo_url": SSH_URL, "repo_deploy_key": DEPLOY_KEY.private[:200] + DEPLOY_KEY.private[-40:]},
            "repo_deploy_key: Value error, the private key cannot be read",
            id="damaged-key",
        ),
        pytest.param(
            {"repo_url": SSH_URL, "repo_token": DEPLOY_KEY.private},
            "repo_token: Value error, this is a private key: give it as repo_deploy_key",
            id="key-as-token",
        ),
    ],
)
async def test_unusable_deploy_keys_are_refused_with_the_reason(
    api: httpx.AsyncClient, fields: dict[str, str], reason: str
) -> None:
    response = await create(api, **fields)

    assert response.status_code == 422
    assert reason in response.json()["detail"]
    secrets = [fields.get("repo_token", ""), *fields.get("repo_deploy_key", "").splitlines()[1:2]]
    assert all(secret not in response.text for secret in secrets if secret)  # never echoed


async def test_update_swaps_credentials_and_removes_them(api: httpx.AsyncClient, database: Database) -> None:
    service = (await create(api, repo_url=SSH_URL, repo_token="t0ken")).json()
    path = f"/v1/services/{service['id']}"
    credential = f"/internal/services/{service['id']}/repo-credential"

    swapped = await api.patch(path, json={"repo_deploy_key": DEPLOY_KEY.private})
    assert swapped.status_code == 200 and swapped.json()["has_repo_credential"] is True
    assert (await api.get(credential)).json() == {"kind": "deploy_key", "token": DEPLOY_KEY.private}
    back = await api.patch(path, json={"repo_token": "t0ken-2", "repo_deploy_key": ""})
    assert (await api.get(credential)).json() == {"kind": "token", "token": "t0ken-2"}
    assert back.json() == swapped.json()
    await api.patch(path, json={"repo_deploy_key": DEPLOY_KEY.private})
    removed = await api.patch(path, json={"repo_deploy_key": ""})
    assert removed.json()["has_repo_credential"] is False
    assert (await api.get(credential)).status_code == 404

    _, events = await stored(database, service["id"])
    assert events[1:] == [
        {"repo_deploy_key": "********"},
        {"repo_token": "********", "repo_deploy_key": ""},
        {"repo_deploy_key": "********"},
        {"repo_deploy_key": ""},
    ]


async def test_a_deploy_key_keeps_its_service_on_ssh(api: httpx.AsyncClient) -> None:
    https = (await create(api, repo_url="https://github.com/acme/private.git")).json()
    refused = await api.patch(f"/v1/services/{https['id']}", json={"repo_deploy_key": DEPLOY_KEY.private})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("repo_url: a deploy key clones over SSH")

    moved = await api.patch(
        f"/v1/services/{https['id']}", json={"repo_url": SSH_URL, "repo_deploy_key": DEPLOY_KEY.private}
    )
    assert moved.status_code == 200, moved.text
    # On the same host, the key stays with the service, and a key clones over SSH only.
    back = await api.patch(f"/v1/services/{https['id']}", json={"repo_url": "https://github.com/acme/x.git"})
    assert back.status_code == 422
    assert (
        "(got 'https://github.com/acme/x.git'), or replace the key with repo_token" in back.json()["detail"]
    )
    assert (await api.get(f"/v1/services/{https['id']}")).json()["repo_url"] == SSH_URL
    same_host = await api.patch(
        f"/v1/services/{https['id']}", json={"repo_url": "ssh://git@github.com/acme/x.git"}
    )
    assert same_host.status_code == 200 and same_host.json()["has_repo_credential"] is True, same_host.text
    # On another host, the key is dropped (domain/repositories.py), and the answer says so.
    other_host = await api.patch(f"/v1/services/{https['id']}", json={"repo_url": "ssh://git@git.test/x.git"})
    assert other_host.status_code == 200, other_host.text
    assert other_host.json()["has_repo_credential"] is False and other_host.json()["notices"]
