"""`dockyard deploy [PATH]`: upload a directory and deploy it, like `railway up`.

The service is `--service`, or the one the directory is linked to (`dockyard link`, `cli/link.py`)."""

from __future__ import annotations

import fnmatch
import io
import json
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from api.schemas.deployments import DeploymentRead
from cli.link import (
    DEFAULT_ENVIRONMENT,
    LINK_DIR,
    NOT_LINKED_HINT,
    CliError,
    call,
    check_same_api,
    find_link,
    open_api,
    reported_errors,
)
from core.contracts import DeploymentStatus
from core.settings import Settings

ALWAYS_EXCLUDED = {".git", ".hg", ".svn", "__pycache__", ".venv", "node_modules", ".DS_Store", LINK_DIR}


def ignore_patterns(root: Path) -> list[str]:
    """Simple patterns from .dockerignore and .gitignore (names and globs; no negation)."""
    patterns = []
    for name in (".dockerignore", ".gitignore"):
        path = root / name
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "!")):
                    patterns.append(line.strip("/"))
    return patterns


def is_ignored(relative: Path, patterns: list[str]) -> bool:
    if any(part in ALWAYS_EXCLUDED for part in relative.parts):
        return True
    text = relative.as_posix()
    return any(fnmatch.fnmatch(text, p) or fnmatch.fnmatch(relative.name, p) for p in patterns)


def pack(root: Path) -> bytes:
    """The directory as a gzipped tarball, without VCS folders, dependencies and ignored files."""
    patterns = ignore_patterns(root)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if is_ignored(relative, patterns) or not (path.is_file() or path.is_dir() or path.is_symlink()):
                continue
            archive.add(path, arcname=relative.as_posix(), recursive=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class Target:
    directory: Path
    service_id: str
    environment: str
    description: str


def deploy_target(
    path: Path | None, service: str | None, environment: str | None, settings: Settings, cwd: Path
) -> Target:
    """What to upload where: `--service`, else the link found in PATH (default: the current
    directory) or above it. Without PATH, a link's whole directory is uploaded, as `railway up` does."""
    if service:
        env = environment or DEFAULT_ENVIRONMENT
        return Target(path or cwd, service, env, f"service {service} ({env})")
    start = path or cwd
    found = find_link(start)
    if found is None:
        raise CliError(f"{start} is not linked to a service: {NOT_LINKED_HINT}, or pass --service ID")
    root, link = found
    check_same_api(link, settings)
    env = environment or link.environment
    description = f"{link.project.name}/{link.service.name} ({env}), linked in {root}"
    return Target(path or root, link.service.id, env, description)


def deploy_directory(
    settings: Settings, path: Path, service_id: str, environment: str, wait: bool
) -> DeploymentRead:
    body = pack(path)
    typer.echo(f"uploading {path} ({len(body) / 1024:.0f} KiB) ...")
    with open_api(settings, timeout=300) as api:
        deployment = call(
            api,
            "POST",
            f"/v1/services/{service_id}/deployments/upload",
            DeploymentRead,
            params={"environment": environment},
            content=body,
            headers={"Content-Type": "application/gzip"},
            context="deploy refused",
        )
        typer.echo(f"deployment {deployment.id} {deployment.status}")
        if not wait:
            return deployment
        logs = threading.Thread(target=print_build_log, args=(api, deployment.id), daemon=True)
        logs.start()
        last = deployment.status
        while not deployment.status.is_final:
            time.sleep(0.5)
            deployment = call(
                api,
                "GET",
                f"/v1/deployments/{deployment.id}",
                DeploymentRead,
                context="cannot follow the deployment",
            )
            if deployment.status != last:
                if last is DeploymentStatus.BUILDING:
                    logs.join(timeout=5)  # the last lines of the build, before what follows it
                typer.echo(f"  {deployment.status}: {deployment.message or ''}")
                last = deployment.status
    if deployment.status is not DeploymentStatus.ACTIVE:
        typer.secho(
            f"deployment {deployment.status} at {deployment.failed_step}: {deployment.message}",
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    return deployment


def print_build_log(api: httpx.Client, deployment_id: str) -> None:
    """Print the build output as it happens (Server-Sent Events), until the build ends."""
    try:
        with api.stream(
            "GET", f"/v1/deployments/{deployment_id}/build-logs", params={"follow": "true"}, timeout=None
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: ") and line != "data: {}":
                    typer.echo(f"  | {json.loads(line[6:])}")
                elif line.startswith("event: "):
                    return
    except httpx.HTTPError:
        return  # the status polling goes on; logs stay available at the same URL


def register(app: typer.Typer, settings_factory: Any) -> None:
    @app.command()
    def deploy(
        path: Annotated[
            Path | None,
            typer.Argument(
                exists=True,
                file_okay=False,
                resolve_path=True,
                help="default: the linked directory, else the current one",
            ),
        ] = None,
        service: Annotated[
            str | None, typer.Option("--service", "-s", help="the service id (default: the link's)")
        ] = None,
        environment: Annotated[
            str | None,
            typer.Option("--environment", "-e", help="default: the link's, else production"),
        ] = None,
        detach: Annotated[bool, typer.Option("--detach", help="do not wait for the result")] = False,
    ) -> None:
        """Upload a directory and deploy it to a service (built like a repository)."""
        settings = settings_factory()
        with reported_errors():
            target = deploy_target(path, service, environment, settings, Path.cwd())
            typer.echo(f"deploying to {target.description}")
            deploy_directory(settings, target.directory, target.service_id, target.environment, not detach)
