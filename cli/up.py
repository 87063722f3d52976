"""`dockyard up`: start every process of a local platform, print where to reach it, stop it all."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import typer

from cli.platform import INFRA, docker_needs_starting, platform_processes
from cli.supervisor import ProcessFailed, Supervisor
from core.settings import Settings


def pid_file(settings: Settings) -> Path:
    return settings.state_dir / "dockyard.pid"


def ready_file(settings: Settings) -> Path:
    return settings.state_dir / "run" / "ready.txt"


def summary(settings: Settings, example_url: str | None) -> str:
    lines = [
        "Dockyard is up.",
        f"  API:              {settings.public_api_url}  (OpenAPI docs: {settings.public_api_url}/docs)",
        f"  API token:        {settings.state_dir / 'secrets.env'} (DOCKYARD_API_TOKEN)",
        f"  First admin:      admin@localhost; first login with the one-time password in "
        f"{settings.state_dir / 'admin-password'}, then `dockyard login`",
        f"  Temporal Web UI:  {settings.temporal_ui_url}",
        f"  Traefik:          {settings.edge_http_url}  (dashboard: {settings.traefik_api_url}/dashboard/)",
        f"  Registry:         {settings.registry_url()}",
    ]
    if example_url:
        lines.append(f"  Example service:  {example_url}")
    return "\n".join(lines)


def service_containers(settings: Settings) -> list[str]:
    """Container ids of the replicas this platform's agent runs (asked before the agent stops)."""
    token = settings.agent_token.get_secret_value() if settings.agent_token else ""
    try:
        response = httpx.get(
            f"{settings.agent_url}/v1/replicas", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        response.raise_for_status()
    except httpx.HTTPError:
        return []
    return [replica["container_id"] for replica in response.json() if replica.get("container_id")]


def stop_containers(container_ids: list[str]) -> None:
    """Stop (not remove) the replicas of deployed services, so nothing is left running.
    The next deploy of a service starts fresh replicas."""
    if not container_ids:
        return
    import docker

    try:
        client = docker.from_env()
    except docker.errors.DockerException:
        return  # dockerd was ours and is gone, and its containers with it
    try:
        for container_id in container_ids:
            try:
                client.containers.get(container_id).stop(timeout=10)
            except docker.errors.NotFound:
                pass
    finally:
        client.close()


def ensure_build_base_image(settings: Settings) -> None:
    """Builds from code start FROM Dockyard's Debian image in its own registry: no public registry."""
    password = settings.registry_password.get_secret_value() if settings.registry_password else ""
    result = subprocess.run(
        [
            "bash",
            str(INFRA / "images" / "build-base-images.sh"),
            settings.registry_host,
            settings.registry_username,
            "-",
        ],
        input=password + "\n",
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "DOCKYARD_STATE_DIR": str(settings.state_dir),
            "DOCKYARD_CACHE_DIR": str(settings.cache_dir),
        },
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise RuntimeError(f"could not prepare the build base image:\n{tail}")


def run_platform(settings: Settings, *, example: bool) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_dir = settings.state_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_file(settings).write_text(str(os.getpid()))
    supervisor = Supervisor(settings.state_dir / "logs", run_dir)
    try:
        for spec in platform_processes(settings, run_dir, start_docker=docker_needs_starting()):
            if stop.is_set():
                return 130
            typer.echo(f"starting {spec.name} ...")
            supervisor.start(spec)
            if spec.name == "registry":
                typer.echo("preparing the build base image (the first time: debootstrap, about a minute) ...")
                ensure_build_base_image(settings)
        example_url = None
        if example:
            from cli.example import deploy_example

            typer.echo("deploying the example service ...")
            example_url = deploy_example(settings)
        text = summary(settings, example_url)
        typer.echo(text + "\nPress Ctrl-C to stop.")
        ready_file(settings).write_text(text)
        # A child that dies is restarted (with backoff, and a line on stderr): one crash is never a reason
        # to stop the platform, whose apps keep serving through Traefik's last good configuration.
        while not stop.wait(0.02):  # a dead Traefik is replaced by its standby at the next tick
            supervisor.check()
        return 0
    except (ProcessFailed, FileNotFoundError, RuntimeError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        return 1
    finally:
        typer.echo("stopping ...")
        containers = service_containers(settings)
        supervisor.stop_all()
        stop_containers(containers)
        ready_file(settings).unlink(missing_ok=True)
        pid_file(settings).unlink(missing_ok=True)
