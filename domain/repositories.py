"""A service's repository URL and its credential: which URLs are accepted, and the host a stored
credential is bound to.

- A URL with a password in it (`https://user:password@host/...`) is refused: the token goes in
  `repo_token`, where it is encrypted and never answered.
- A credential is sent only over an encrypted transport: `https://` or SSH. With `http://` it is
  refused, unless an admin listed the host in DOCKYARD_INSECURE_REPOSITORY_HOSTS (as Docker's
  insecure registries: a git server on a trusted network).
- `file://` repositories (a directory on the builder) are refused unless an admin enabled them
  (DOCKYARD_ALLOW_FILE_REPOSITORIES), and never take a credential.
- A stored credential belongs to the host it was given for: a new `repo_url` on another host drops it
  (the answer says so), unless a new credential comes with it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from core.contracts import CredentialKind
from core.settings import Settings
from domain.errors import Invalid

SSH_REPO_URL = re.compile(r"^(ssh://|git@[^/:]+:)\S+$")


def is_private_key(secret: str) -> bool:
    return secret.startswith("-----BEGIN ") and "PRIVATE KEY-----" in secret


def credential_kind(secret: str) -> CredentialKind:
    """What a stored repository credential is, told by its shape: a token is never a key block."""
    return "deploy_key" if is_private_key(secret) else "token"


def is_ssh_url(repo_url: str | None) -> bool:
    return bool(repo_url and SSH_REPO_URL.match(repo_url))


def repository_host(url: str) -> str:
    """The host a credential for `url` would be sent to (lower-case; `file` for file:// URLs)."""
    if url.startswith("git@") or ("://" not in url and ":" in url):  # scp-like: git@host:path
        return url.split("@", 1)[-1].split(":", 1)[0].lower()
    parts = urlsplit(url)
    if parts.scheme == "file":
        return "file"
    return (parts.hostname or "").lower()


def check_repository(url: str, settings: Settings, *, with_credential: bool) -> None:
    """Refuse a URL Dockyard must not clone (with this credential), naming the field and the reason."""
    parts = urlsplit(url) if "://" in url else None
    scheme = parts.scheme if parts is not None else "ssh"
    if parts is not None and parts.password is not None:
        raise Invalid("repo_url", "holds a password (user:password@): give the token in repo_token instead")
    if scheme == "file":
        if not settings.allow_file_repositories:
            raise Invalid(
                "repo_url",
                "file:// repositories are disabled; an admin enables them with "
                "DOCKYARD_ALLOW_FILE_REPOSITORIES=true",
            )
        if with_credential:
            raise Invalid("repo_url", "a file:// repository takes no credential")
    if scheme == "http" and with_credential:
        host = repository_host(url)
        if host not in {listed.lower() for listed in settings.insecure_repository_hosts}:
            raise Invalid(
                "repo_url",
                f"a credential is never sent over plain http:// (to {host}): use https://, or an admin "
                "lists the host in DOCKYARD_INSECURE_REPOSITORY_HOSTS",
            )


def credential_follows(old_url: str | None, new_url: str) -> bool:
    """Whether a credential stored for `old_url` may be sent to `new_url` (the same host)."""
    return old_url is not None and repository_host(old_url) == repository_host(new_url)
