"""The `dockyard` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import deploy as deploy_command
from cli import link as link_command
from cli import login as login_command
from cli import logs as logs_command
from cli import plan as plan_command
from cli import pools as pools_command
from cli.platform import load_or_create_secrets
from core.settings import Settings, SettingsError, load_settings

app = typer.Typer(help="Dockyard: a self-hosted PaaS.", no_args_is_help=True, add_completion=False)


def _settings(*, with_local_secrets: bool = True) -> Settings:
    """Settings from the environment; for a local installation, its generated secrets fill the gaps."""
    try:
        state_dir = load_settings().state_dir
        if with_local_secrets:
            for name, value in load_or_create_secrets(state_dir).items():
                os.environ.setdefault(name, value)
        return load_settings()
    except SettingsError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@app.command()
def up(
    example: Annotated[bool, typer.Option(help="Build and deploy the bundled example service.")] = False,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background; stop with `down`.")
    ] = False,
) -> None:
    """Start the whole platform on this machine; Ctrl-C stops every process it started."""
    settings = _settings()
    if detach:
        _up_detached(settings, example)
        return
    from cli.up import run_platform

    raise typer.Exit(run_platform(settings, example=example))


def _up_detached(settings: Settings, example: bool) -> None:
    from cli.up import ready_file

    log = settings.state_dir / "logs" / "up.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ready_file(settings).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "cli", "up", *(["--example"] if example else [])]
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    while process.poll() is None and not ready_file(settings).exists():
        time.sleep(0.2)
    if process.poll() is not None:
        typer.secho(
            f"dockyard up failed (exit {process.returncode}); see {log}", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(1)
    typer.echo(ready_file(settings).read_text())
    typer.echo(f"running in the background (pid {process.pid}); stop it with `dockyard down`")


@app.command()
def down() -> None:
    """Stop a platform started with `dockyard up --detach`."""
    from cli.up import pid_file

    settings = _settings()
    path = pid_file(settings)
    if not path.exists():
        typer.echo("dockyard is not running")
        return
    pid = int(path.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        typer.echo("dockyard was not running (stale pid file removed)")
        return
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            typer.echo("dockyard stopped")
            return
        time.sleep(0.2)
    typer.secho(f"dockyard (pid {pid}) did not stop within 90s", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command()
def api() -> None:
    """Run the control-plane API."""
    from api.main import run

    run(_settings())


@app.command()
def prometheus(
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="where its configuration is written (default: $RUNTIME_DIRECTORY, else <state dir>/run)"
        ),
    ] = None,
) -> None:
    """Run Prometheus as `dockyard up` does (its configuration from the settings, its data in the state
    directory): the systemd unit's command."""
    from cli.platform import prometheus_argv

    settings = _settings(with_local_secrets=False)
    directory = run_dir or Path(os.environ.get("RUNTIME_DIRECTORY") or settings.state_dir / "run")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = prometheus_argv(settings, directory)
    os.execv(argv[0], argv)


@app.command("codec-server")
def codec_server(
    host: Annotated[str, typer.Option(help="Listen on this address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen on this port.")] = 7803,
) -> None:
    """Serve Temporal's remote codec protocol alone, so that a Temporal Web UI shows Dockyard's
    encrypted payloads decoded to admins (the API serves the same at /v1/codec)."""
    import uvicorn

    from api.main import create_codec_app

    uvicorn.run(create_codec_app(_settings()), host=host, port=port, log_level="warning")


@app.command()
def worker(
    role: Annotated[str, typer.Option(help="all | orchestrator | builder")] = "all",
) -> None:
    """Run Temporal workers for Dockyard's workflows, activities and builds."""
    from workflows.worker import Role, run_worker

    asyncio.run(run_worker(_settings(), Role(role)))


@app.command()
def agent(
    join: Annotated[
        str | None,
        typer.Option(
            "--join",
            metavar="API_URL",
            help="Enroll this node with the control plane at API_URL (once; it restarts without).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="The join token (POST /v1/nodes/join-tokens), or DOCKYARD_AGENT_JOIN_TOKEN."),
    ] = None,
    ca_fingerprint: Annotated[
        str | None,
        typer.Option(help="sha256:... of Dockyard's CA (given with the token): refuse any other."),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="key=value, told to the control plane at enrollment; repeatable.")
    ] = None,
) -> None:
    """Run the node agent (settings: DOCKYARD_AGENT_*). Enrolled, it serves HTTPS with mutual TLS."""
    from pydantic import ValidationError

    from agent.enrollment import EnrollmentError, is_enrolled
    from agent.main import run
    from agent.settings import AgentSettings

    given = {"join_url": join, "join_token": token, "join_ca_fingerprint": ca_fingerprint}
    overrides: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    if label:
        overrides["labels"] = _labels(label)
    try:
        settings = AgentSettings(**overrides)
        if settings.token is None and settings.join_token is None and not is_enrolled(settings.state_dir):
            if _is_local_installation():
                _settings()  # its generated agent token: the `dockyard up` agent, in bearer mode
                settings = AgentSettings(**overrides)
        run(settings)
    except (EnrollmentError, ValidationError) as exc:
        typer.secho(f"dockyard agent: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def _is_local_installation() -> bool:
    try:
        return (load_settings().state_dir / "secrets.env").exists()
    except SettingsError:
        return False


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--label")
        labels[key] = value
    return labels


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    from core.db import migrate as run_migrations

    settings = _settings(with_local_secrets=False)
    run_migrations(settings.database_url)
    typer.echo(f"database at newest revision: {settings.database_url.split('@')[-1]}")


deploy_command.register(app, _settings)
link_command.register(app, _settings)
login_command.register(app, _settings)
logs_command.register(app, _settings)
plan_command.register(app)
pools_command.register(app, _settings)
