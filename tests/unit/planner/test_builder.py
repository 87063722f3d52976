"""Builder selection and what an unplannable repository is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.planner import PlanError, plan_build, select_builder
from tests.unit.planner.support import fixture, plan_of, write_repo


@pytest.mark.parametrize(
    ("repo", "image", "dockerfile_path", "builder"),
    [
        pytest.param("dockerfile", None, None, "dockerfile", id="dockerfile-present"),
        pytest.param("dockerfile", "nginx:1.27", None, "dockerfile", id="dockerfile-beats-image"),
        pytest.param("config-dockerfile-path", None, None, "dockerfile", id="railway-dockerfile-path"),
        pytest.param("config-builder-dockerfile", None, None, "dockerfile", id="dockyard-builder-dockerfile"),
        pytest.param(
            "config-builder-nixpacks", None, None, "planner", id="builder-nixpacks-ignores-dockerfile"
        ),
        pytest.param(
            "config-dockerfile-path", None, "docker/web.Dockerfile", "dockerfile", id="path-argument"
        ),
        pytest.param("node-npm", "ghcr.io/acme/web:1", None, "image", id="image"),
        pytest.param("node-npm", None, None, "planner", id="planner"),
        pytest.param("unknown", None, None, "planner", id="planner-even-if-it-will-fail"),
    ],
)
def test_select_builder(repo: str, image: str | None, dockerfile_path: str | None, builder: str) -> None:
    assert select_builder(fixture(repo), image, dockerfile_path) == builder


def test_image_without_a_source_tree(tmp_path: Path) -> None:
    assert select_builder(tmp_path / "absent", "nginx:1.27", None) == "image"


def test_configured_dockerfile_must_exist() -> None:
    with pytest.raises(PlanError, match=r"^ops/Dockerfile: Dockerfile not found"):
        select_builder(fixture("node-npm"), None, "ops/Dockerfile")


def test_builder_dockerfile_without_dockerfile(tmp_path: Path) -> None:
    write_repo(tmp_path, {"railway.toml": '[build]\nbuilder = "DOCKERFILE"\n'})
    with pytest.raises(
        PlanError, match=r"^railway.toml: build.builder is DOCKERFILE but there is no Dockerfile"
    ):
        select_builder(tmp_path, None, None)


def test_dockerfile_path_cannot_leave_the_source(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(PlanError, match="not found"):
        select_builder(tmp_path / "repo", None, "../Dockerfile")


def test_unknown_repository_lists_what_was_looked_for_and_how_to_start() -> None:
    with pytest.raises(PlanError) as caught:
        plan_of("unknown")
    message = caught.value.message
    assert message.startswith("Could not detect how to build this repository. Looked for:\n")
    for looked_for in ("package.json", "requirements.txt", "go.mod", "Cargo.toml", "Gemfile", "composer.json",
                       "deno.json", "index.html", "Procfile"):  # fmt: skip
        assert looked_for in message
    for remedy in (
        "NIXPACKS_START_CMD",
        "deploy.startCommand in railway.toml",
        "dockyard.toml",
        "Dockerfile",
    ):
        assert remedy in message


def test_detected_provider_without_start_command() -> None:
    with pytest.raises(PlanError) as caught:
        plan_of("node-no-start")
    assert caught.value.message.startswith(
        "Detected a node app but found no start command (looked for scripts.start, main or index.js"
    )
    assert "NIXPACKS_START_CMD" in caught.value.message


def test_start_command_alone_plans_an_unknown_repository() -> None:
    plan = plan_of("unknown", NIXPACKS_START_CMD="./serve")
    assert plan.providers == []
    assert plan.start.cmd == "./serve"


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="not a directory"):
        plan_build(tmp_path / "missing")


def test_symlinks_out_of_the_tree_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "secret.json"
    outside.write_text('{"scripts": {"start": "leak"}}')
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "package.json").symlink_to(outside)
    with pytest.raises(PlanError, match="Could not detect"):
        plan_build(repo)


def test_phase_dependency_cycle(tmp_path: Path) -> None:
    write_repo(
        tmp_path,
        {
            "index.html": "",
            "nixpacks.toml": '[phases.a]\ndependsOn = ["b"]\ncmds = ["x"]\n[phases.b]\ndependsOn = ["a"]\n',
        },
    )
    with pytest.raises(PlanError, match="dependency cycle between a, b"):
        plan_build(tmp_path)
