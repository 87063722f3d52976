"""`dockyard plan PATH`: the plan as JSON, or the Dockerfile; a PlanError prints its message, exit 1."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from cli.plan import register
from core.planner import BaseImages, render_dockerfile
from tests.unit.planner.support import fixture, plan_of


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def version() -> None:  # a second command, so `plan` is addressed by name as in `dockyard plan`
        typer.echo("0")

    return app


def test_prints_the_plan_json(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["plan", str(fixture("go-mod")), "--env", "NIXPACKS_GO_BIN=api"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data == plan_of("go-mod", NIXPACKS_GO_BIN="api").to_json()
    assert data["phases"]["build"]["cmds"] == ["go build -o out ./cmd/api"]
    assert data["buildImage"] == "dockyard/debian:bookworm"


def test_prints_the_dockerfile(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["plan", str(fixture("node-npm")), "--dockerfile"])
    assert result.exit_code == 0, result.output
    assert result.output == render_dockerfile(plan_of("node-npm"), BaseImages())


def test_plan_error_prints_the_message_and_exits_1(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["plan", str(fixture("unknown"))])
    assert result.exit_code == 1
    assert "Could not detect how to build this repository" in result.output
    assert "Traceback" not in result.output


def test_bad_env_pair(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["plan", str(fixture("node-npm")), "--env", "NO_EQUALS"])
    assert result.exit_code == 2
    assert "expected KEY=VALUE" in result.output
