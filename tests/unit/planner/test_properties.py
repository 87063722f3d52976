"""Invariants: installs stay cached across code changes, plans round-trip through JSON, "..." only inserts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.planner import BaseImages, BuildPlan, Phase, StartPhase, render_dockerfile
from core.planner.layers import AUTO_MARKERS, fill_auto
from tests.unit.planner.support import plan_of

commands = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    str.strip
)
paths = st.from_regex(r"[a-z][a-z0-9_.-]{0,8}(/[a-z0-9_-]{1,6}){0,2}/?", fullmatch=True)
names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
extra_phase_names = st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(
    lambda n: n not in ("setup", "install", "build")
)


@st.composite
def plans(draw: st.DrawFn) -> BuildPlan:
    """Plans shaped like the providers': setup needs no files, install declares its manifests."""
    phases = {
        "setup": Phase(name="setup", apt_pkgs=draw(st.lists(st.sampled_from(["curl", "git", "python3"]))),
                       cmds=draw(st.lists(commands, max_size=2)), only_include_files=[]),
        "install": Phase(name="install", depends_on=["setup"],
                         cmds=draw(st.lists(commands, min_size=1, max_size=3)),
                         only_include_files=draw(st.lists(paths, max_size=4)),
                         cache_directories=draw(st.lists(paths, max_size=2)),
                         paths=draw(st.lists(paths, max_size=1))),
        "build": Phase(name="build", depends_on=["install"], cmds=draw(st.lists(commands, max_size=3)),
                       only_include_files=draw(st.none() | st.lists(paths, max_size=2))),
    }  # fmt: skip
    for name in draw(st.lists(extra_phase_names, max_size=3, unique=True)):
        phases[name] = Phase(name=name, depends_on=["build"], cmds=draw(st.lists(commands, max_size=2)))
    return BuildPlan(
        providers=draw(
            st.lists(st.sampled_from(["node", "python", "go", "staticfile"]), max_size=2, unique=True)
        ),
        variables=draw(st.dictionaries(names, values, max_size=4)),
        static_assets=draw(st.none() | st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), values)),
        phases=phases,
        start=StartPhase(cmd=draw(commands), run_image=draw(st.none() | st.just("dockyard/debian:bookworm"))),
    )


def whole_tree_copy_comes_after_install(text: str) -> None:
    lines = text.splitlines()
    install = lines.index("# install")
    section_end = next((i for i in range(install, len(lines)) if not lines[i]), len(lines))
    install_runs = [i for i in range(install, section_end) if lines[i].startswith("RUN ")]
    whole_copies = [i for i, line in enumerate(lines) if line == "COPY . ./"]
    assert len(whole_copies) == 1
    assert install_runs and whole_copies[0] > install_runs[-1]


@settings(max_examples=150)
@given(plans())
def test_rendering_never_copies_the_tree_before_install(plan: BuildPlan) -> None:
    text = render_dockerfile(plan, BaseImages())
    whole_tree_copy_comes_after_install(text)
    assert text.splitlines()[-1].startswith('CMD ["/bin/sh", "-c", ')


CACHED_INSTALLS = [
    "node-npm", "node-pnpm", "node-yarn", "node-workspaces", "bun-app",
    "python-pip", "python-uv", "python-poetry",
    "python-pdm", "python-pipenv", "python-setuptools", "go-mod", "go-cmd", "ruby-rack", "php-composer",
]  # fmt: skip


@pytest.mark.parametrize("repo", CACHED_INSTALLS)
def test_fixture_installs_are_cached_across_code_changes(repo: str) -> None:
    plan = plan_of(repo)
    assert plan.phases["install"].only_include_files is not None
    whole_tree_copy_comes_after_install(render_dockerfile(plan, BaseImages()))


@settings(max_examples=150)
@given(plans())
def test_plan_json_round_trips(plan: BuildPlan) -> None:
    data = plan.to_json()
    assert BuildPlan.from_json(json.loads(json.dumps(data))) == plan
    assert all("_" not in key for phase in data["phases"].values() for key in phase)
    assert set(data) <= {"providers", "buildImage", "variables", "staticAssets", "phases", "start"}


@given(st.none() | st.lists(st.sampled_from("abc")), st.lists(st.sampled_from(["x", "y", "..."])))
def test_dots_insert_the_lower_layer_and_nothing_else(
    original: list[str] | None, replacer: list[str]
) -> None:
    filled = [item for item in fill_auto(original, replacer) or [] if item not in AUTO_MARKERS]
    expected = [item for part in replacer for item in ((original or []) if part == "..." else [part])]
    assert filled == expected
