"""`dockyard deploy PATH`: upload a directory and deploy it, like `railway up`."""

from __future__ import annotations

import fnmatch
import io
import json
import tarfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from core.settings import Settings

ALWAYS_EXCLUDED = {".git", ".hg", ".svn", "__pycache__", ".venv", "node_modules", ".DS_Store"}
FINAL = {"ACTIVE", "FAILED", "SUPERSEDED", "CANCELLED", "REMOVED"}


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


def deploy_directory(
    settings: Settings, path: Path, service_id: str, environment: str, wait: bool
) -> dict[str, Any]:
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    body = pack(path)
    typer.echo(f"uploading {path} ({len(body) / 1024:.0f} KiB) ...")
    with httpx.Client(
        base_url=settings.public_api_url, headers={"Authorization": f"Bearer {token}"}, timeout=300
    ) as api:
        response = api.post(
            f"/v1/services/{service_id}/deployments/upload",
            params={"environment": environment},
            content=body,
            headers={"Content-Type": "application/gzip"},
        )
        if response.status_code >= 400:
            typer.secho(f"deploy refused: {response.json().get('detail')}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        deployment: dict[str, Any] = response.json()
        typer.echo(f"deployment {deployment['id']} {deployment['status']}")
        if not wait:
            return deployment
        logs = threading.Thread(target=print_build_log, args=(api, deployment["id"]), daemon=True)
        logs.start()
        last = deployment["status"]
        while deployment["status"] not in FINAL:
            time.sleep(0.5)
            deployment = api.get(f"/v1/deployments/{deployment['id']}").json()
            if deployment["status"] != last:
                if last == "BUILDING":
                    logs.join(timeout=5)  # the last lines of the build, before what follows it
                typer.echo(f"  {deployment['status']}: {deployment.get('message') or ''}")
                last = deployment["status"]
    if deployment["status"] != "ACTIVE":
        step = deployment.get("failed_step")
        typer.secho(
            f"deployment {deployment['status']} at {step}: {deployment['message']}", fg=typer.colors.RED
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
        path: Annotated[Path, typer.Argument(exists=True, file_okay=False, resolve_path=True)] = Path("."),
        service: Annotated[str, typer.Option("--service", "-s", help="the service id")] = "",
        environment: Annotated[str, typer.Option("--environment", "-e")] = "production",
        detach: Annotated[bool, typer.Option("--detach", help="do not wait for the result")] = False,
    ) -> None:
        """Upload a directory and deploy it to a service (built like a repository)."""
        if not service:
            typer.secho("--service is required", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        deploy_directory(settings_factory(), path, service, environment, wait=not detach)
