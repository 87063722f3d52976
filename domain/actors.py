"""Who is asking: the actor every operation is done for, and the credentials that name one.

    bootstrap   DOCKYARD_API_TOKEN: the installation's first credential, an admin (kept working for
                installations made before people existed; `dockyard up` writes it to secrets.env)
    user        a person, through a session cookie (the dashboard) or one of their personal tokens
    deploy      a project's deploy token (CI): deploys and reads that project only
    control     the control plane's own work (the fleet watch, node pools), audited under its name
    service     a service identity: Traefik (its configuration) or a builder (an uploaded source, a
                repository credential); each may call only its own routes (SERVICE_ROUTES)

Every audit event names the actor by `label`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum


class PlatformRole(StrEnum):
    ADMIN = "admin"  # nodes, pools, users, settings; every project
    MEMBER = "member"  # the projects they are a member of, with their role there


class ProjectRole(StrEnum):
    OWNER = "owner"  # everything in the project, its members and its deploy tokens included
    DEVELOPER = "developer"  # deploy, variables, settings
    VIEWER = "viewer"  # read, never variable values or credentials


class ActorKind(StrEnum):
    BOOTSTRAP = "bootstrap"
    USER = "user"
    DEPLOY = "deploy"
    CONTROL = "control"
    SERVICE = "service"


# The routes (method, path template) each service identity may call; nothing else.
SERVICE_ROUTES: dict[str, frozenset[tuple[str, str]]] = {
    "traefik": frozenset({("GET", "/internal/traefik/config")}),
    "prometheus": frozenset({("GET", "/internal/prometheus/targets")}),
    "builder": frozenset(
        {("GET", "/internal/sources/{upload_id}"), ("GET", "/internal/services/{service_id}/repo-credential")}
    ),
}


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    label: str  # for the audit log: "admin", "user:usr_…", "user:usr_… via token tok_…", "deploy-token:tok_…"
    role: PlatformRole | None = None
    user_id: str | None = None
    token_id: str | None = None  # the personal or deploy token used, if one was
    session_id: str | None = None  # the session used, if one was
    project_id: str | None = None  # a deploy token's project
    # A person whose password someone else chose (the first admin): only changing it is allowed.
    password_change_required: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role is PlatformRole.ADMIN

    def __str__(self) -> str:
        return self.label


BOOTSTRAP = Actor(ActorKind.BOOTSTRAP, "admin", role=PlatformRole.ADMIN)


def service_identity(name: str) -> Actor:
    return Actor(ActorKind.SERVICE, f"service:{name}")


def control_plane(part: str) -> Actor:
    """The control plane acting on its own (the fleet watch, node pools)."""
    return Actor(ActorKind.CONTROL, f"control-plane:{part}", role=PlatformRole.ADMIN)


# Credentials are random, given once, and stored as their SHA-256: long random secrets need no slow hash.
PERSONAL_TOKEN_PREFIX = "dyp_"
DEPLOY_TOKEN_PREFIX = "dyd_"
INVITATION_PREFIX = "dyi_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
