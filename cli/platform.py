"""What `dockyard up` runs, as data: generated secrets, rendered configs and the process list."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

import bcrypt
from pydantic import SecretStr

from cli.sockets import Listen
from cli.supervisor import ProcessSpec, Standby
from core import pki
from core.codec import new_payload_key
from core.programs import how_to_install
from core.restarts import RestartPolicy
from core.secrets import SecretBox
from core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
INFRA = REPO_ROOT / "infra"
SECRET_NAMES = (
    "DOCKYARD_API_TOKEN",
    "DOCKYARD_TRAEFIK_TOKEN",
    "DOCKYARD_BUILDER_TOKEN",
    "DOCKYARD_PROMETHEUS_TOKEN",
    "DOCKYARD_AGENT_TOKEN",
    "DOCKYARD_REGISTRY_PASSWORD",
    "DOCKYARD_SECRET_KEY",
    "DOCKYARD_PAYLOAD_KEY",
)
DOCKER_SOCKET = Path("/var/run/docker.sock")


def load_or_create_secrets(state_dir: Path) -> dict[str, str]:
    """Secrets of a local installation, generated once and kept in `<state>/secrets.env` (mode 600)."""
    path = state_dir / "secrets.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name in SECRET_NAMES and value:
                values[name] = value
    missing = [name for name in SECRET_NAMES if name not in values]
    if missing:
        values.update({name: secrets.token_urlsafe(32) for name in missing})
        if "DOCKYARD_SECRET_KEY" in missing:
            values["DOCKYARD_SECRET_KEY"] = SecretBox.generate_key()
        if "DOCKYARD_PAYLOAD_KEY" in missing:
            values["DOCKYARD_PAYLOAD_KEY"] = new_payload_key()
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text("".join(f"{name}={values[name]}\n" for name in SECRET_NAMES))
    return values


def _hostport(url_or_address: str) -> tuple[str, int]:
    parts = urlsplit(url_or_address if "://" in url_or_address else f"tcp://{url_or_address}")
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{url_or_address!r} needs an explicit host and port")
    return parts.hostname, parts.port


def _render(template: Path, target: Path, **values: str) -> Path:
    return _write_private(target, Template(template.read_text()).substitute(values))


def _write_private(target: Path, text: str) -> Path:
    """Generated configs carry credentials (the API token, the registry's password hash): owner only."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.touch(mode=0o600)
    target.chmod(0o600)
    target.write_text(text)
    return target


def render_registry_config(settings: Settings, run_dir: Path) -> Path:
    password = settings.registry_password.get_secret_value() if settings.registry_password else ""
    htpasswd = run_dir / "registry.htpasswd"
    # The registry checks the hash on every request. The password is 32 random bytes, not a human
    # one, so bcrypt's work factor adds nothing but latency: use the minimum.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    _write_private(htpasswd, f"{settings.registry_username}:{hashed}\n")
    return _render(
        INFRA / "registry" / "config.yml.tmpl",
        run_dir / "registry.yml",
        storage_dir=str(settings.state_dir / "registry"),
        address=settings.registry_host,
        htpasswd_file=str(htpasswd),
    )


def _traefik_token(settings: Settings) -> str:
    """Traefik's service identity (an installation from before it exists: the API token)."""
    secret = settings.traefik_token or settings.api_token
    return secret.get_secret_value() if secret else ""


def render_traefik_config(settings: Settings, run_dir: Path) -> Path:
    token = _traefik_token(settings)
    http_host, http_port = _hostport(settings.edge_http_url)
    https_host, https_port = _hostport(settings.edge_https_url)
    api_host, api_port = _hostport(settings.traefik_api_url)
    return _render(
        INFRA / "traefik" / "traefik.yml.tmpl",
        run_dir / "traefik.yml",
        edge_http_address=f"{http_host}:{http_port}",
        edge_https_address=f"{https_host}:{https_port}",
        traefik_api_address=f"{api_host}:{api_port}",
        control_plane_url=settings.public_api_url,
        api_token=token,
        instance_routes=str(INFRA / "traefik" / "instance.yml"),
    )


def render_prometheus_config(settings: Settings, run_dir: Path) -> Path:
    files = pki.ensure_prometheus_certificate(settings.pki_dir)
    agent = urlsplit(settings.agent_url)
    interval = settings.prometheus_scrape_interval_seconds
    return _render(
        INFRA / "prometheus" / "prometheus.yml.tmpl",
        run_dir / "prometheus.yml",
        scrape_interval=f"{interval:g}s",
        scrape_timeout=f"{min(10.0, interval):g}s",
        control_plane_url=settings.public_api_url,
        prometheus_token=_secret(settings.prometheus_token),
        ca_file=str(files.ca_certificate),
        cert_file=str(files.prometheus_certificate),
        key_file=str(files.prometheus_key),
        local_agent_scheme=agent.scheme,
        local_agent_address=agent.netloc,
        traefik_address=urlsplit(settings.traefik_api_url).netloc,
    )


def prometheus_argv(settings: Settings, run_dir: Path) -> list[str]:
    """Prometheus with its configuration written to `run_dir`, its data in the state directory."""
    host, port = _hostport(settings.prometheus_url)
    return [
        _binary("prometheus"),
        f"--config.file={render_prometheus_config(settings, run_dir)}",
        f"--storage.tsdb.path={settings.state_dir / 'prometheus'}",
        f"--storage.tsdb.retention.time={settings.prometheus_retention}",
        f"--web.listen-address={host}:{port}",
    ]


def traefik_serves_the_routes(settings: Settings) -> Callable[[int], bool]:
    """Whether the Traefik whose "instance" entrypoint is on this port may take traffic: it has loaded
    every router the API publishes (/internal/traefik/config), or, while the API is away, every router
    the active Traefik serves. With neither to compare with, its API answering is all there is to ask."""
    token = _traefik_token(settings)
    published = urllib.request.Request(
        f"{settings.public_api_url}/internal/traefik/config", headers={"Authorization": f"Bearer {token}"}
    )

    def ready(port: int) -> bool:
        served = _traefik_routers(f"http://127.0.0.1:{port}")
        if served is None:
            return False
        wanted = _json(published)
        expected = (
            set(wanted.get("http", {}).get("routers", {}))
            if isinstance(wanted, dict)
            else _traefik_routers(settings.traefik_api_url)
        )
        return expected is None or expected <= served

    return ready


def _traefik_routers(api_url: str) -> set[str] | None:
    """The routers a Traefik loaded from the HTTP provider (rawdata: all of them, not a page)."""
    rawdata = _json(urllib.request.Request(f"{api_url}/api/rawdata"))
    if not isinstance(rawdata, dict):
        return None
    return {name.removesuffix("@http") for name in rawdata.get("routers") or {} if name.endswith("@http")}


def _json(request: urllib.request.Request) -> object:
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(f"{name} is not installed ({how_to_install(name)})")
    return found


def docker_needs_starting() -> bool:
    return not DOCKER_SOCKET.exists()


def platform_processes(settings: Settings, run_dir: Path, *, start_docker: bool) -> list[ProcessSpec]:
    """Every process of a local platform, in start order."""
    temporal_host, temporal_port = _hostport(settings.temporal_address)
    _, ui_port = _hostport(settings.temporal_ui_url)
    registry_host, registry_port = _hostport(settings.registry_host)
    redis_host, redis_port = _hostport(settings.redis_url)
    agent_host, agent_port = _hostport(settings.agent_url)
    prometheus_host, prometheus_port = _hostport(settings.prometheus_url)
    dockyard = [sys.executable, "-m", "cli"]
    processes: list[ProcessSpec] = []
    if start_docker:
        # Live restore: a dockerd that crashes and is started again keeps the replicas running instead
        # of stopping and restarting them all.
        dockerd = [_binary("dockerd"), "--live-restore"]
        processes.append(ProcessSpec("dockerd", dockerd, ready_path=DOCKER_SOCKET, ready_timeout=60))
    processes += [
        ProcessSpec(
            "temporal",
            ["bash", str(INFRA / "temporal" / "dev-server.sh")],
            env={
                "PATH": f"{Path(sys.executable).parent}:{_path()}",
                "TEMPORAL_IP": temporal_host,
                "TEMPORAL_PORT": str(temporal_port),
                "TEMPORAL_UI_PORT": str(ui_port),
                "TEMPORAL_DB_FILE": str(settings.state_dir / "temporal.db"),
                # The Web UI decodes Dockyard's encrypted payloads through the API (api/routes/codec.py).
                "TEMPORAL_UI_CODEC_ENDPOINT": f"{settings.public_api_url}/v1/codec",
            },
            ready_tcp=(temporal_host, temporal_port),
            ready_url=settings.temporal_ui_url,
        ),
        ProcessSpec(
            "registry",
            [_binary("docker-registry"), "serve", str(render_registry_config(settings, run_dir))],
            ready_url=f"{settings.registry_url()}/v2/",
            ready_tcp=(registry_host, registry_port),
        ),
        ProcessSpec(
            "redis",
            [
                _binary("redis-server"),
                "--bind",
                redis_host,
                "--port",
                str(redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(run_dir),
            ],
            ready_tcp=(redis_host, redis_port),
        ),
        ProcessSpec("api", [*dockyard, "api"], ready_url=f"{settings.public_api_url}/healthz"),
        ProcessSpec(
            "prometheus",
            prometheus_argv(settings, run_dir),
            ready_url=f"{settings.prometheus_url}/-/ready",
            ready_tcp=(prometheus_host, prometheus_port),
        ),
        ProcessSpec(
            "traefik",
            [_binary("traefik"), f"--configFile={render_traefik_config(settings, run_dir)}"],
            # The data path: two instances, new connections steered to the active one; when it dies the
            # standby, whose routes are loaded, takes them at once (cli/supervisor.py). The one that died
            # is started again sooner than the rest, as the new standby.
            standby=Standby("instance", traefik_serves_the_routes(settings)),
            restart_policy=RestartPolicy(initial_delay_seconds=0.1),
            sockets=(
                Listen("web", *_hostport(settings.edge_http_url)),
                Listen("websecure", *_hostport(settings.edge_https_url)),
                Listen("traefik", *_hostport(settings.traefik_api_url)),
            ),
        ),
        ProcessSpec(
            "agent",
            [*dockyard, "agent"],
            env={
                "DOCKYARD_AGENT_LISTEN_HOST": agent_host,
                "DOCKYARD_AGENT_LISTEN_PORT": str(agent_port),
                "DOCKYARD_AGENT_NODE_ADDRESS": agent_host,
                # Its own state directory: never an identity enrolled elsewhere on this machine, so it
                # stays in bearer mode, which is how the local platform calls it.
                "DOCKYARD_AGENT_STATE_DIR": str(settings.state_dir / "agent"),
                "DOCKYARD_AGENT_REGISTRY_HOST": settings.registry_host,
                "DOCKYARD_AGENT_REGISTRY_USERNAME": settings.registry_username,
                "DOCKYARD_AGENT_REGISTRY_PASSWORD": _secret(settings.registry_password),
                # Prometheus reads its /metrics with this (and nothing else).
                "DOCKYARD_AGENT_METRICS_TOKEN": _secret(settings.prometheus_token),
            },
            ready_url=f"{settings.agent_url}/healthz",
        ),
        ProcessSpec("worker", [*dockyard, "worker"]),
    ]
    return processes


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value else ""


def _path() -> str:
    import os

    return os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
