"""A repository URL or ref that git cannot be given (a NUL byte, a newline) ends the build at once with
a non-retryable error naming the field, with the real git: no attempt is repeated forever."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.git import _git, clone
from activities.sources import _inside
from core.contracts import SourceSpec

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("source", "field"),
    [
        (SourceSpec(kind="repo", repo_url="https://git.example/app\x00.git", ref="main"), "repo_url"),
        (SourceSpec(kind="repo", repo_url="https://git.example/app.git", ref="main\x00"), "ref"),
        (SourceSpec(kind="repo", repo_url="https://git.example/app.git", ref="main\n--upload-pack=x"), "ref"),
        (SourceSpec(kind="repo", repo_url="https://git.example/app.git\r", ref="main"), "repo_url"),
    ],
    ids=["nul-url", "nul-ref", "newline-ref", "cr-url"],
)
async def test_a_control_character_is_refused_naming_the_field(
    source: SourceSpec, field: str, tmp_path: Path
) -> None:
    with pytest.raises(ApplicationError) as refused:
        await clone(source, tmp_path / "src")

    assert refused.value.non_retryable
    assert refused.value.type == "InvalidSource"
    assert refused.value.message.startswith(f"source.{field}: contains the control character")
    assert not (tmp_path / "src").exists()


async def test_git_itself_given_a_nul_byte_is_non_retryable(tmp_path: Path) -> None:
    with pytest.raises(ApplicationError) as refused:
        await _git("-C", str(tmp_path), "checkout", "main\x00")

    assert refused.value.non_retryable
    assert "embedded null byte" in refused.value.message


@pytest.mark.parametrize("field", ["root_directory", "dockerfile_path"])
def test_a_nul_byte_in_a_source_path_is_refused_naming_the_field(field: str, tmp_path: Path) -> None:
    with pytest.raises(ApplicationError) as refused:
        _inside(tmp_path, "app\x00/x", field)

    assert refused.value.non_retryable
    assert refused.value.message == f"{field}: 'app\\x00/x' contains a NUL byte"
