"""Services: where the code comes from (an image, a repository and its credential, or uploads), how it
is built and placed, and a service's URL."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key
from pydantic import AfterValidator, BaseModel, Field, SecretStr, field_validator, model_validator

from api.schemas.common import Body, Command, HealthPath, Read, ServiceName, valid_image
from core import limits
from core.scheduler import parse_constraint
from domain.repositories import is_private_key, is_ssh_url


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\0" in value:
        raise ValueError("must be a relative path inside the source, without '..'")
    return value


RelativePath = Annotated[str, Field(max_length=limits.PATH_MAX_LENGTH), AfterValidator(_relative_path)]
RepoUrl = Annotated[str, Field(max_length=1024, pattern=r"^(https?://|ssh://|git@|file://)\S+$")]
RepoBranch = Annotated[str, Field(max_length=255, pattern=r"^[^\s~^:?*\[\\]+$")]
WatchPatterns = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=limits.WATCH_PATTERN_MAX_LENGTH)]],
    Field(
        max_length=limits.WATCH_PATTERNS_MAX,
        description="deploy a push only when a changed path matches (gitignore-style, `!` negates; "
        "Railway's watchPatterns); empty: every push",
    ),
]


DEPLOY_KEY_MAX_LENGTH = 16 * 1024


def deploy_key_problem(key: str) -> str | None:
    """Why `key` cannot clone unattended over SSH, or None. Parsed here (no ssh-keygen on the API's
    host): an OpenSSH or PEM private key block without a passphrase."""
    if key.startswith(("ssh-", "ecdsa-", "sk-")):
        return "this is a public key: give its private half (the public half is the repository's deploy key)"
    if not is_private_key(key):
        return "not a private key: expected an OpenSSH or PEM block (-----BEGIN ... PRIVATE KEY-----)"
    data = key.encode()
    try:
        if "-----BEGIN OPENSSH PRIVATE KEY-----" in key:
            load_ssh_private_key(data, password=None)
        else:
            load_pem_private_key(data, password=None)
    except TypeError:  # what cryptography raises for a key that needs a password
        return (
            "the key is protected by a passphrase, which an unattended build cannot type: "
            "give a key without one (`ssh-keygen -p -N '' -f KEY` removes it from a copy)"
        )
    except UnsupportedAlgorithm as exc:
        return f"unsupported key type ({exc}): use an ed25519, ECDSA or RSA key"
    except ValueError as exc:
        return f"the private key cannot be read ({exc})"
    return None


def _deploy_key(value: SecretStr | None) -> SecretStr | None:
    """A usable key, stored with Unix line ends and a final newline (ssh refuses a key without it)."""
    if value is None or not value.get_secret_value().strip():
        return None if value is None else SecretStr("")
    if (size := len(value.get_secret_value())) > DEPLOY_KEY_MAX_LENGTH:
        raise ValueError(f"{size} characters; a private key has at most {DEPLOY_KEY_MAX_LENGTH}")
    key = "\n".join(value.get_secret_value().strip().splitlines()) + "\n"
    if problem := deploy_key_problem(key):
        raise ValueError(problem)
    return SecretStr(key)


def _token(value: SecretStr | None) -> SecretStr | None:
    # The kind of a stored credential is told by its shape, so a key never passes as a token. A pasted
    # key spans lines: this says what it is before the control-character rule would (the field is
    # `multiline` for PrintableText, so this checks the rest of that rule itself).
    if value is None:
        return value
    if is_private_key(value.get_secret_value().strip()):
        raise ValueError("this is a private key: give it as repo_deploy_key")
    if problem := limits.control_character(value.get_secret_value()):
        raise ValueError(problem)
    return value


def _filled(secret: SecretStr | None) -> bool:
    return secret is not None and secret.get_secret_value() != ""


def _one_credential(token: SecretStr | None, deploy_key: SecretStr | None) -> None:
    # Both may be given when one of them is "" (switching kinds): the service keeps one credential.
    if _filled(token) and _filled(deploy_key):
        raise ValueError("repo_token and repo_deploy_key: give one repository credential, not both")


def _deploy_key_needs_ssh(deploy_key: SecretStr | None, repo_url: str | None) -> None:
    if _filled(deploy_key) and not is_ssh_url(repo_url):
        raise ValueError(
            f"repo_url: a deploy key clones over SSH; give an ssh:// or git@host:path URL (got {repo_url!r})"
        )


RepoToken = Annotated[SecretStr | None, AfterValidator(_token)]
DeployKey = Annotated[SecretStr | None, AfterValidator(_deploy_key)]


class BuildFields(Body):
    """How code is built; leave out to detect it (Dockerfile, or Nixpacks-style auto-detection)."""

    root_directory: RelativePath | None = Field(default=None, description="build from this subdirectory")
    dockerfile_path: RelativePath | None = None
    build_command: Command | None = None
    start_command: Command | None = None


def _constraints(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for text in value:
        parse_constraint(text)  # ValueError names the constraint and the expected form
    return value


class PlacementFields(Body):
    """Where replicas run and how a deploy replaces them; leave out for the platform's defaults."""

    cpu_millis: int | None = Field(
        default=None,
        ge=limits.CPU_MILLIS.minimum,
        le=limits.CPU_MILLIS.maximum,
        description="CPU each replica reserves and is limited to (1000 = a core)",
    )
    memory_mb: int | None = Field(
        default=None,
        ge=limits.MEMORY_MB.minimum,
        le=limits.MEMORY_MB.maximum,
        description="memory each replica reserves and is limited to, MiB",
    )
    constraints: list[Annotated[str, Field(max_length=255)]] | None = Field(
        default=None, max_length=20, description='node labels replicas need: "key=value" or "key!=value"'
    )
    placement_strategy: Literal["spread", "binpack"] | None = Field(
        default=None, description="spread (default): across nodes; binpack: fill the fullest node first"
    )
    overlap_seconds: float | None = Field(
        default=None,
        ge=limits.OVERLAP_SECONDS.minimum,
        le=limits.OVERLAP_SECONDS.maximum,
        description="how long old replicas keep serving beside the new ones once those are routed",
    )
    draining_seconds: int | None = Field(
        default=None,
        ge=limits.DRAINING_SECONDS.minimum,
        le=limits.DRAINING_SECONDS.maximum,
        description="SIGTERM → SIGKILL grace when a replica is stopped",
    )

    @field_validator("constraints")
    @classmethod
    def _valid_constraints(cls, value: list[str] | None) -> list[str] | None:
        return _constraints(value)


class ServiceCreate(BuildFields, PlacementFields):
    """A service runs `image`, or code from `repo_url` (at `repo_branch`), or code uploaded with
    each deploy (`dockyard deploy PATH`) when neither is given."""

    # A PEM or OpenSSH block; a token's own validator explains a key pasted there.
    multiline = frozenset({"repo_deploy_key", "repo_token"})

    name: ServiceName
    image: str | None = Field(default=None, max_length=512, description="image, e.g. registry:5000/app:1.2")
    repo_url: RepoUrl | None = None
    repo_branch: RepoBranch | None = None
    repo_token: RepoToken = Field(
        default=None,
        description="token for a private repository (or `user:token`, e.g. a Bitbucket app password); "
        "stored encrypted, never returned",
    )
    repo_deploy_key: DeployKey = Field(
        default=None,
        description="private key (OpenSSH or PEM, no passphrase) whose public half is a deploy key of the "
        "repository; needs an ssh:// or git@host:path repo_url; stored encrypted, never returned",
    )
    watch_patterns: WatchPatterns = Field(default_factory=list)
    previews: bool = Field(default=True, description="deploy it in pull-request previews (when enabled)")
    port: int = Field(
        default=8080,
        ge=limits.PORT.minimum,
        le=limits.PORT.maximum,
        description="port the service listens on ($PORT)",
    )
    replicas: int = Field(default=1, ge=limits.REPLICAS.minimum, le=limits.REPLICAS.maximum)
    health_check_path: HealthPath | None = None
    constraints: list[Annotated[str, Field(max_length=255)]] = Field(  # type: ignore[assignment]
        default_factory=list,
        max_length=20,
        description='node labels replicas need: "key=value" or "key!=value"',
    )
    placement_strategy: Literal["spread", "binpack"] = Field(  # type: ignore[assignment]
        default="spread", description="spread: across nodes; binpack: fill the fullest node first"
    )

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else valid_image(value)

    @model_validator(mode="after")
    def _one_source(self) -> ServiceCreate:
        if self.image and self.repo_url:
            raise ValueError("image and repo_url: give one source, not both")
        if self.repo_branch and not self.repo_url:
            raise ValueError("repo_branch: needs repo_url")
        _one_credential(self.repo_token, self.repo_deploy_key)
        _deploy_key_needs_ssh(self.repo_deploy_key, self.repo_url)
        return self


class ServiceUpdate(BuildFields, PlacementFields):
    # A PEM or OpenSSH block; a token's own validator explains a key pasted there.
    multiline = frozenset({"repo_deploy_key", "repo_token"})
    image: str | None = Field(
        default=None, max_length=512, description="run this image (drops the repository)"
    )
    repo_url: RepoUrl | None = Field(default=None, description="build this repository (drops the image)")
    repo_branch: RepoBranch | None = None
    repo_token: RepoToken = Field(
        default=None, description='replace the repository credential with this token; "" removes it'
    )
    repo_deploy_key: DeployKey = Field(
        default=None,
        description='replace the repository credential with this deploy key (as in ServiceCreate); "" '
        "removes it",
    )
    watch_patterns: WatchPatterns | None = None
    previews: bool | None = None
    port: int | None = Field(default=None, ge=limits.PORT.minimum, le=limits.PORT.maximum)
    replicas: int | None = Field(default=None, ge=limits.REPLICAS.minimum, le=limits.REPLICAS.maximum)
    health_check_path: HealthPath | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ServiceUpdate:
        if self.image and self.repo_url:
            raise ValueError("image and repo_url: give one source, not both")
        _one_credential(self.repo_token, self.repo_deploy_key)
        return self

    @field_validator(
        "image",
        "repo_url",
        "repo_branch",
        "watch_patterns",
        "previews",
        "port",
        "replicas",
        "constraints",
        "placement_strategy",
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        # These columns are NOT NULL (health_check_path and the placement numbers may be cleared with null).
        if value is None:
            raise ValueError("must not be null (leave the field out to keep the current value)")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else valid_image(value)


class ServiceRead(Read):
    id: str
    project_id: str
    name: str
    image: str | None
    repo_url: str | None
    repo_branch: str | None
    root_directory: str | None
    dockerfile_path: str | None
    build_command: str | None
    start_command: str | None
    has_repo_credential: bool = Field(
        description="a repository token or deploy key is stored (it is never returned)"
    )
    watch_patterns: list[str]
    previews: bool
    port: int
    replicas: int
    health_check_path: str | None
    cpu_millis: int | None
    memory_mb: int | None
    constraints: list[str]
    placement_strategy: str
    overlap_seconds: float | None
    draining_seconds: int | None
    created_at: datetime
    urls: dict[str, str] = Field(default_factory=dict, description="URL per environment name")
    notices: list[str] = Field(
        default_factory=list,
        description="what the change did besides what was asked (a credential dropped with a new host)",
    )


class ServiceUrl(BaseModel):
    service_id: str
    environment: str
    url: str
    deployment_id: str | None = Field(description="the deployment serving it, if any")
