"""`dockyard logs [-f]`: a service's runtime logs, like `railway logs`.

The service is `--service`, or the one the directory is linked to (`dockyard link`, `cli/link.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from api.schemas.logs import ServiceLogsRead
from cli.deploy import deploy_target
from cli.link import ApiError, call, open_api, reason, reported_errors
from core.contracts import LogLine, LogNotice


def show_line(line: LogLine, as_json: bool) -> None:
    if as_json:
        typer.echo(line.model_dump_json())
        return
    when = line.time.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    replica = line.replica_id.rsplit("-", 1)[-1]
    prefix = typer.style(f"{when} {line.node}/{replica}", dim=True)
    message = typer.style(line.message, fg=typer.colors.RED) if line.stream == "stderr" else line.message
    typer.echo(f"{prefix} {message}")


def show_notice(notice: LogNotice) -> None:
    typer.secho(f"! {notice.reason}", fg=typer.colors.YELLOW, err=True)


def follow(api: httpx.Client, path: str, params: dict[str, Any], as_json: bool) -> None:
    """Print each event of the API's stream until it ends or Ctrl-C."""
    with api.stream("GET", path, params={**params, "follow": "true"}, timeout=None) as stream:
        if stream.status_code >= 400:
            stream.read()
            raise ApiError(f"cannot follow the logs: {reason(stream)} (HTTP {stream.status_code})")
        event = "message"
        for text in stream.iter_lines():
            if text.startswith("event: "):
                event = text.removeprefix("event: ")
            elif text.startswith("data: "):
                data = json.loads(text.removeprefix("data: "))
                if event == "notice":
                    show_notice(LogNotice.model_validate(data))
                elif event == "timeout":
                    typer.secho("! the API let this follower go after an hour: run it again", err=True)
                    return
                else:
                    show_line(LogLine.model_validate(data), as_json)
            elif not text:
                event = "message"


def register(app: typer.Typer, settings_factory: Any) -> None:
    @app.command()
    def logs(
        service: Annotated[
            str | None, typer.Option("--service", "-s", help="the service id (default: the link's)")
        ] = None,
        environment: Annotated[
            str | None, typer.Option("--environment", "-e", help="default: the link's, else production")
        ] = None,
        follow_: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
        since: Annotated[str | None, typer.Option(help="15m, 2h, 7d, or a time (RFC 3339)")] = None,
        until: Annotated[str | None, typer.Option(help="15m, 2h, 7d, or a time (RFC 3339)")] = None,
        replica: Annotated[str | None, typer.Option(help="one replica's lines only (its id)")] = None,
        deployment: Annotated[
            str | None, typer.Option("--deployment", "-d", help="one deployment's lines only (its id)")
        ] = None,
        search: Annotated[
            str | None,
            typer.Option(
                "--search", "-q", help='words, "phrases", key:value on JSON lines, -term to leave out'
            ),
        ] = None,
        tail: Annotated[int, typer.Option("--tail", "-n", help="how many of the last lines")] = 100,
        as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    ) -> None:
        """Print a service's runtime logs (every replica, every node, in time order)."""
        settings = settings_factory()
        with reported_errors():
            target = deploy_target(None, service, environment, settings, Path.cwd())
            params: dict[str, Any] = {"environment": target.environment, "tail": tail}
            given = {"since": since, "until": until, "replica": replica, "search": search}
            given["deployment"] = deployment
            params.update({name: value for name, value in given.items() if value})
            path = f"/v1/services/{target.service_id}/logs"
            with open_api(settings) as api:
                if follow_:
                    try:
                        follow(api, path, params, as_json)
                    except KeyboardInterrupt:
                        return
                    return
                found = call(api, "GET", path, ServiceLogsRead, context="cannot read the logs", params=params)
            for notice in found.notices:
                show_notice(notice)
            for line in found.lines:
                show_line(line, as_json)
