"""Git for the builders: clone a repository at a ref with the service's credential (a token as HTTP
basic auth, or a deploy key over SSH), read the commit, and keep git's own error text for the user."""

from __future__ import annotations

import asyncio
import base64
import os
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from temporalio.exceptions import ApplicationError

from core.contracts import SourceSpec


@dataclass(frozen=True)
class GitCredential:
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


async def clone(source: SourceSpec, target: Path, credential: GitCredential | None = None) -> Commit:
    """Clone `repo_url` at `ref` (a branch, tag or commit); answer the commit checked out."""
    _refuse_control_characters(source)
    repo_url = source.repo_url or ""
    async with _git_credential(credential, repo_url, target.parent) as env:
        await _git("clone", "--quiet", "--no-checkout", "--", repo_url, str(target), env=env)
    ref = source.ref or "HEAD"
    await _git("-C", str(target), "checkout", "--quiet", "--detach", _remote_ref(ref))
    return parse_commit(await _git("-C", str(target), "log", "-1", COMMIT_FORMAT, "HEAD"))


def _refuse_control_characters(source: SourceSpec) -> None:
    """A NUL byte cannot be passed to git at all (the exec fails the same way on every attempt), and a
    newline or other control character in a URL or ref is never what the user meant."""
    for name, value in (("repo_url", source.repo_url), ("ref", source.ref)):
        if value and (bad := next((c for c in value if ord(c) < 32 or ord(c) == 127), None)) is not None:
            raise ApplicationError(
                f"source.{name}: contains the control character {bad!r}; git cannot be given it",
                type="InvalidSource",
                non_retryable=True,
            )


DEPLOY_KEY_FILE = "deploy_key"
KNOWN_HOSTS_FILE = "known_hosts"


@asynccontextmanager
async def _git_credential(
    credential: GitCredential | None, repo_url: str, workdir: Path
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
    try:
        process = await asyncio.create_subprocess_exec(
            "git",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin", **(env or {})},
        )
    except ValueError as exc:  # "embedded null byte": the same on every attempt
        raise ApplicationError(
            f"git cannot be run with these arguments: {exc}", type="InvalidSource", non_retryable=True
        ) from None
    except FileNotFoundError:
        raise ApplicationError(
            "git is not installed on this builder (scripts/install.sh installs it)",
            type="GitMissing",
            non_retryable=True,
        ) from None
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
