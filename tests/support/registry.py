"""A real Docker Distribution registry on a free loopback port, with htpasswd auth, for tests.

with Registry() as registry:
    pushed = push_image(docker_client, registry, "my-image:tag", "apps/web")
    pushed.ref  # "127.0.0.1:PORT/apps/web@sha256:..."
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx

from tests.support.images import SESSION_REGISTRIES
from tests.support.process import LoopbackServer, LoopbackServerError, free_port

REGISTRY_BINARY = "docker-registry"
HTPASSWD_BINARY = "htpasswd"


class RegistryError(LoopbackServerError):
    pass


class Registry(LoopbackServer):
    """`docker-registry serve` on 127.0.0.1:<free port>, temporary storage, bcrypt htpasswd auth."""

    name = REGISTRY_BINARY
    slug = "registry"
    error = RegistryError

    def __init__(
        self,
        username: str = "dockyard",
        password: str | None = None,
        binary: str | None = None,
        start_timeout_seconds: float = 15.0,
    ) -> None:
        super().__init__(start_timeout_seconds)
        self.username = username
        self.password = password or secrets.token_urlsafe(18)
        self.binary = binary or shutil.which(REGISTRY_BINARY) or f"/usr/bin/{REGISTRY_BINARY}"
        self.port = 0

    @staticmethod
    def available() -> str | None:
        """Why a Registry cannot start here, or None when both binaries are installed."""
        for binary in (REGISTRY_BINARY, HTPASSWD_BINARY):
            if shutil.which(binary) is None:
                return f"{binary} is not installed (apt-get install docker-registry apache2-utils)"
        return None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def auth_config(self) -> dict[str, str]:
        """Credentials in the docker SDK's `auth_config` shape."""
        return {"username": self.username, "password": self.password, "serveraddress": self.host}

    def command(self, root: Path) -> list[str]:
        (root / "storage").mkdir()
        (root / "htpasswd").write_text(_htpasswd(self.username, self.password))
        self.port = free_port()
        SESSION_REGISTRIES.add(self.host)
        (root / "config.yml").write_text(_config(self.host, root))
        return [self.binary, "serve", str(root / "config.yml")]

    def ready(self) -> bool:
        """Ready means `GET /v2/` answers 401: up, and auth really on."""
        try:
            status = httpx.get(f"{self.url}/v2/", timeout=1.0, trust_env=False).status_code
        except httpx.TransportError:
            return False
        if status == 401:
            return True
        raise RegistryError(f"GET {self.url}/v2/ answered {status}, expected 401 (auth on)")


def _htpasswd(username: str, password: str) -> str:
    result = subprocess.run(
        [HTPASSWD_BINARY, "-Bbn", username, password], capture_output=True, text=True, check=True
    )
    return result.stdout.strip() + "\n"


def _config(host: str, root: Path) -> str:
    return f"""\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root / "storage"}
  delete:
    enabled: true
http:
  addr: {host}
auth:
  htpasswd:
    realm: dockyard-test
    path: {root / "htpasswd"}
"""


@dataclass(frozen=True)
class PushedImage:
    repository: str  # "127.0.0.1:PORT/name"
    tag: str
    digest: str  # "sha256:..."

    @property
    def ref(self) -> str:
        """The pinned reference replicas run: `registry/name@sha256:...`."""
        return f"{self.repository}@{self.digest}"

    @property
    def tagged(self) -> str:
        return f"{self.repository}:{self.tag}"


def login(client: docker.DockerClient, registry: Registry) -> None:
    """`docker login` for this client (the SDK keeps the credentials in memory, writes no config file)."""
    client.login(username=registry.username, password=registry.password, registry=registry.host, reauth=True)


def push_image(
    client: docker.DockerClient, registry: Registry, image: str, name: str, tag: str = "latest"
) -> PushedImage:
    """Tag the local `image` as `<registry>/<name>:<tag>`, push it with the registry's credentials and
    return where it landed, digest included."""
    repository = f"{registry.host}/{name}"
    if not client.images.get(image).tag(repository, tag):
        raise RegistryError(f"could not tag {image} as {repository}:{tag}")
    digest = None
    for line in client.images.push(
        repository, tag=tag, auth_config=registry.auth_config(), stream=True, decode=True
    ):
        if "error" in line:
            raise RegistryError(f"push of {repository}:{tag} failed: {line['error']}")
        digest = (line.get("aux") or {}).get("Digest") or digest
    if digest is None:
        raise RegistryError(f"push of {repository}:{tag} reported no digest")
    return PushedImage(repository=repository, tag=tag, digest=digest)
