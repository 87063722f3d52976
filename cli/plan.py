"""`dockyard plan PATH`: print the build plan (or the Dockerfile) Dockyard would use for a repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from core.planner import BaseImages, PlanError, plan_build, render_dockerfile


def parse_env(pairs: list[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--env")
        variables[name] = value
    return variables


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        path: Annotated[Path, typer.Argument(help="The repository to plan.")] = Path("."),
        env: Annotated[
            list[str] | None,
            typer.Option(
                "--env", "-e", help="A service variable, KEY=VALUE (NIXPACKS_* and others); repeatable."
            ),
        ] = None,
        dockerfile: Annotated[
            bool, typer.Option("--dockerfile", help="Print the rendered Dockerfile instead of the plan.")
        ] = False,
    ) -> None:
        """Detect how to build a repository and print its Nixpacks-style build plan as JSON."""
        variables = parse_env(env or [])
        try:
            build_plan = plan_build(path, variables)
            output = (
                render_dockerfile(build_plan, BaseImages())
                if dockerfile
                else json.dumps(build_plan.to_json(), indent=2)
            )
        except PlanError as exc:
            typer.secho(exc.message, fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        typer.echo(output.rstrip("\n"))
