"""Source activities: fetch a deployment's code onto the builder host and plan its build.

They run on the builders' shared task queue and answer with the queue of the host that now holds
the code, so the build itself runs where the code is (Temporal's worker-specific task queues).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shlex
import shutil
import socket
import subprocess
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import httpx
from pydantic import Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from core import nixpacks
from core.build import Command
from core.contracts import BuildOptions, Contract, SourceSpec
from core.planner import (
    BaseImages,
    PlanError,
    plan_build,
    read_deploy_config,
    render_dockerfile,
    select_builder,
)
from core.settings import Settings
from core.sources import UnsafeArchive, check_members

READY_FILE = "prepared.json"
NIXPACKS_TIMEOUT_SECONDS = 300
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PrepareSource(Contract):
    deployment_id: str
    service_id: str = Field(description="keys the build caches: one service's caches are its own")
    source: SourceSpec
    build: BuildOptions


class PreparedSource(Contract):
    host_queue: str = Field(description="the task queue of the builder host that holds the code")
    context_dir: str
    builder: str = Field(description="dockerfile | planner | nixpacks")
    dockerfile: str | None = Field(default=None, description="generated Dockerfile (planned builds)")
    dockerfile_path: str | None = Field(default=None, description="the repository's Dockerfile, relative")
    plan: dict[str, object] | None = None
    deploy: dict[str, object] = Field(default_factory=dict, description="deploy keys from config files")
    commit_sha: str | None = None
    commit_message: str | None = Field(default=None, description="the commit's subject (first) line")
    commit_author: str | None = Field(default=None, description="Name <email>")


class DiscardSource(Contract):
    deployment_id: str


def host_task_queue(settings: Settings) -> str:
    return f"{settings.build_task_queue}-{socket.gethostname()}"


class SourceActivities:
    def __init__(self, settings: Settings, base_images: BaseImages) -> None:
        self.settings = settings
        self.base_images = base_images

    @activity.defn
    async def prepare_source(self, request: PrepareSource) -> PreparedSource:
        """Idempotent: a retry finds the work directory prepared and answers the same."""
        workdir = self.settings.builds_dir / request.deployment_id
        ready = workdir / READY_FILE
        if ready.exists():
            return PreparedSource.model_validate_json(ready.read_text())
        shutil.rmtree(workdir, ignore_errors=True)
        source_dir = workdir / "src"
        source_dir.mkdir(parents=True)
        try:
            # A clone, a large upload or a nixpacks run outlasts the step's heartbeat timeout.
            async with heartbeating():
                commit = await self._fetch(request, workdir, source_dir)
                prepared = await asyncio.to_thread(self._plan, request, source_dir)
        except ApplicationError as exc:
            if exc.non_retryable:  # the deploy ends here: nothing will come back for this directory
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        if commit is not None:
            prepared = prepared.model_copy(update=commit._asdict())
        ready.write_text(prepared.model_dump_json())
        return prepared

    @activity.defn
    async def discard_source(self, request: DiscardSource) -> None:
        await asyncio.to_thread(shutil.rmtree, self.settings.builds_dir / request.deployment_id, True)

    async def _fetch(self, request: PrepareSource, workdir: Path, source_dir: Path) -> Commit | None:
        """Put the code in `source_dir`; answer the commit when it came from a repository."""
        if request.source.kind == "upload":
            await self._fetch_upload(request.source, workdir, source_dir)
            return None
        if request.source.kind == "repo":
            wanted = request.source.credential
            credential = await self._repo_credential(request.service_id) if wanted else None
            return await _clone(request.source, source_dir, credential)
        raise ApplicationError(f"nothing to build for a {request.source.kind} source", non_retryable=True)

    def _plan(self, request: PrepareSource, source_dir: Path) -> PreparedSource:
        context = _inside(source_dir, request.build.root_directory or ".", "root_directory")
        if not context.is_dir():
            raise ApplicationError(
                f"root_directory: {request.build.root_directory!r} is not a directory of the source",
                type="PlanFailed",
                non_retryable=True,
            )
        try:
            builder = select_builder(context, None, request.build.dockerfile_path)
            deploy = read_deploy_config(context).model_dump(exclude_none=True)
            prepared = PreparedSource(
                host_queue=host_task_queue(self.settings),
                context_dir=str(context),
                builder=builder,
                deploy=deploy,
            )
            if builder == "dockerfile":
                path = request.build.dockerfile_path or deploy.get("dockerfile_path") or "Dockerfile"
                _inside(context, str(path), "dockerfile_path")
                return prepared.model_copy(update={"dockerfile_path": str(path)})
            if self.settings.build_planner == "nixpacks":
                return self._plan_with_nixpacks(prepared, context, request)
            plan = plan_build(context, _plan_env(request.build))
            return prepared.model_copy(
                update={
                    "dockerfile": render_dockerfile(plan, self.base_images, cache_key=request.service_id),
                    "plan": plan.to_json(),
                }
            )
        except (PlanError, nixpacks.NixpacksError) as exc:
            raise ApplicationError(str(exc), type="PlanFailed", non_retryable=True) from None

    def _plan_with_nixpacks(
        self, prepared: PreparedSource, context: Path, request: PrepareSource
    ) -> PreparedSource:
        """The real nixpacks plans the build and writes its Dockerfile into the context (`.nixpacks/`)."""
        binary = nixpacks.require_binary(self.settings.build_nixpacks_binary)
        env = _plan_env(request.build)
        plan = nixpacks.parse_plan(_run_nixpacks(nixpacks.plan_command(binary, context, env), context))
        _run_nixpacks(nixpacks.dockerfile_command(binary, context, env, request.service_id), context)
        written = nixpacks.generated_dockerfile(context)
        if not written.is_file():
            raise nixpacks.NixpacksError(f"nixpacks build --out wrote no Dockerfile at {written}")
        dockerfile = nixpacks.pin_build_args(written.read_text(), nixpacks.plan_variables(plan))
        return prepared.model_copy(update={"builder": "nixpacks", "plan": plan, "dockerfile": dockerfile})

    async def _repo_credential(self, service_id: str) -> RepoCredential | None:
        """The service's repository credential, from the control plane (never in workflow payloads)."""
        url = f"{self.settings.public_api_url}/internal/services/{service_id}/repo-credential"
        async with httpx.AsyncClient(timeout=30, headers=self._auth()) as http:
            response = await http.get(url)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        answer = response.json()
        # A control plane from before deploy keys answers only {"token": ...}.
        if answer.get("kind") == "deploy_key":
            return RepoCredential(kind="deploy_key", secret=str(answer["token"]))
        return RepoCredential(kind="token", secret=str(answer["token"]))

    def _auth(self) -> dict[str, str]:
        token = self.settings.api_token.get_secret_value() if self.settings.api_token else ""
        return {"Authorization": f"Bearer {token}"}

    async def _fetch_upload(self, source: SourceSpec, workdir: Path, source_dir: Path) -> None:
        url = f"{self.settings.public_api_url}/internal/sources/{source.upload_id}"
        archive = workdir / "source.tar.gz"
        digest = hashlib.sha256()
        async with (
            httpx.AsyncClient(timeout=60, headers=self._auth()) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code == 404:
                raise ApplicationError(
                    f"source upload {source.upload_id} not found", type="SourceMissing", non_retryable=True
                )
            response.raise_for_status()
            with archive.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
            expected = response.headers.get("x-content-sha256")
        if expected and expected != digest.hexdigest():
            raise RuntimeError(f"source upload {source.upload_id} arrived damaged (sha256 mismatch)")
        await asyncio.to_thread(_extract, archive, source_dir)
        archive.unlink()


def _plan_env(build: BuildOptions) -> dict[str, str]:
    """The service's own build and start commands win over detection, as NIXPACKS_* variables do."""
    env = dict(build.variables)
    if build.build_command:
        env["NIXPACKS_BUILD_CMD"] = build.build_command
    if build.start_command:
        env["NIXPACKS_START_CMD"] = build.start_command
    return env


def _run_nixpacks(command: Command, cwd: Path) -> str:
    """Run one nixpacks command; answer its stdout, or fail with the end of its output."""
    done = subprocess.run(
        command.argv,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", DEFAULT_PATH), **command.env},
        capture_output=True,
        text=True,
        timeout=NIXPACKS_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        output = nixpacks.last_lines(done.stdout + done.stderr)
        raise nixpacks.NixpacksError(f"nixpacks {command.argv[1]} failed (exit {done.returncode}):\n{output}")
    return done.stdout


def _inside(root: Path, relative: str, field: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ApplicationError(f"{field}: {relative!r} leaves the source directory", non_retryable=True)
    return path


def _extract(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            check_members(tar.getmembers())
            tar.extractall(target, filter="data")
    except (tarfile.TarError, UnsafeArchive) as exc:
        raise ApplicationError(
            f"source archive unusable: {exc}", type="SourceInvalid", non_retryable=True
        ) from None


@dataclass(frozen=True)
class RepoCredential:
    """A token (HTTP basic auth) or a deploy key (an SSH private key); its repr hides the secret."""

    kind: Literal["token", "deploy_key"]
    secret: str = field(repr=False)


def git_auth_env(token: str | None, repo_url: str = "") -> dict[str, str]:
    """Git configuration, passed in the environment (never on a command line other users can
    read), that sends the token as HTTP basic auth with the user name its host expects."""
    if not token:
        return {}
    user, secret = basic_auth_user(token, repo_url)
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }


def basic_auth_user(token: str, repo_url: str) -> tuple[str, str]:
    """(user, password) for a repository token. A token given as `user:token` names its user (an
    app password with its account, say); otherwise the user name the host's access tokens take:
    Bitbucket Cloud `x-token-auth`, GitLab `oauth2` (its personal, project and OAuth tokens all
    accept it), GitHub and Gitea/Forgejo `x-access-token` (any name works for the latter)."""
    if ":" in token:
        user, _, secret = token.partition(":")
        return user, secret
    host = (urlsplit(repo_url).hostname or "").lower()
    if host == "bitbucket.org" or host.endswith(".bitbucket.org"):
        return "x-token-auth", token
    if "gitlab" in host:
        return "oauth2", token
    return "x-access-token", token


class Commit(NamedTuple):
    """The commit a repository source was built from, named as PreparedSource names it."""

    commit_sha: str
    commit_message: str | None
    commit_author: str | None


# NUL-separated, so a message may hold any text: sha, "Name <email>", the raw message.
COMMIT_FORMAT = "--format=%H%x00%an <%ae>%x00%B"
COMMIT_MESSAGE_LIMIT = 500


def parse_commit(log_output: str) -> Commit:
    """What `git log -1 COMMIT_FORMAT` printed: the message is cut to its first line (the subject)."""
    sha, author, message = log_output.split("\0", 2)
    subject = next(iter(message.strip().splitlines()), "")[:COMMIT_MESSAGE_LIMIT]
    return Commit(commit_sha=sha.strip(), commit_message=subject or None, commit_author=author or None)


async def _clone(source: SourceSpec, target: Path, credential: RepoCredential | None = None) -> Commit:
    """Clone `repo_url` at `ref` (a branch, tag or commit); answer the commit checked out."""
    repo_url = source.repo_url or ""
    async with _git_credential(credential, repo_url, target.parent) as env:
        await _git("clone", "--quiet", "--no-checkout", "--", repo_url, str(target), env=env)
    ref = source.ref or "HEAD"
    await _git("-C", str(target), "checkout", "--quiet", "--detach", _remote_ref(ref))
    return parse_commit(await _git("-C", str(target), "log", "-1", COMMIT_FORMAT, "HEAD"))


DEPLOY_KEY_FILE = "deploy_key"
KNOWN_HOSTS_FILE = "known_hosts"


@asynccontextmanager
async def _git_credential(
    credential: RepoCredential | None, repo_url: str, workdir: Path
) -> AsyncIterator[dict[str, str]]:
    """The environment that lets git use the credential. A deploy key lives in the deployment's work
    directory, readable by this user only, for as long as the clone runs (whatever its outcome)."""
    if credential is None or credential.kind == "token":
        yield git_auth_env(credential.secret if credential else None, repo_url)
        return
    key_file = workdir / DEPLOY_KEY_FILE
    _write_private(key_file, credential.secret.rstrip("\n") + "\n")  # ssh reads no key without it
    try:
        yield git_ssh_env(key_file, workdir / KNOWN_HOSTS_FILE)
    finally:
        key_file.unlink(missing_ok=True)


def _write_private(path: Path, text: str) -> None:
    # Created 0600 (never wider, not even for a moment); refuses to follow a planted link.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def git_ssh_env(key_file: Path, known_hosts: Path) -> dict[str, str]:
    """Git's ssh command for a deploy key: that key only, never a prompt, and none of the builder
    host's ssh configuration (`-F /dev/null`: its IdentityFile keys would be offered too). The host key
    is trusted on first use and kept in the deployment's own known_hosts, as Railway and Coolify do for
    deploy keys: their users give a URL and a key, not a host key to pin."""
    options = ["IdentitiesOnly=yes", "BatchMode=yes", "StrictHostKeyChecking=accept-new"]
    options.append(f"UserKnownHostsFile={known_hosts}")
    command = ["ssh", "-F", "/dev/null", "-i", str(key_file)]
    command += [word for option in options for word in ("-o", option)]
    return {"GIT_SSH_COMMAND": shlex.join(command)}


def _remote_ref(ref: str) -> str:
    return ref if ref == "HEAD" or _looks_like_commit(ref) else f"origin/{ref}"


def _looks_like_commit(ref: str) -> bool:
    return 7 <= len(ref) <= 40 and all(c in "0123456789abcdef" for c in ref)


async def _git(*args: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin", **(env or {})},
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        command = args[0] if args[0] != "-C" else args[2]
        raise ApplicationError(
            f"git {command} failed: {git_error(err.decode(errors='replace'))}",
            type="GitFailed",
            non_retryable=True,
        )
    return out.decode()


# Lines around the cause that say nothing about it: ssh's note of a host key trusted on first use,
# and git's advice after any failed fetch over SSH.
GIT_NOISE = (
    "Warning: Permanently added ",
    "Please make sure you have the correct access rights",
    "and the repository exists.",
)


def git_error(stderr: str, lines: int = 3) -> str:
    """The last lines of git's error output that tell why it failed ("Permission denied (publickey)")."""
    kept = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " ".join([line for line in kept if not line.startswith(GIT_NOISE)][-lines:])


__all__ = ["DiscardSource", "PrepareSource", "PreparedSource", "SourceActivities", "host_task_queue"]
