"""Watch patterns: Railway's examples, gitignore's rules, and the invariants that hold for any path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.webhooks import matches_watch_patterns


@pytest.mark.parametrize(
    ("patterns", "changed", "expected"),
    [
        # Railway's documented examples
        pytest.param(["/src/**/*.ts"], ["src/index.ts"], True, id="railway-ts-top"),
        pytest.param(["/src/**/*.ts"], ["src/a/b/c.ts"], True, id="railway-ts-deep"),
        pytest.param(["/src/**/*.ts"], ["lib/src/index.ts"], False, id="railway-ts-anchored"),
        pytest.param(["/src/**/*.ts"], ["src/index.js"], False, id="railway-ts-other-extension"),
        pytest.param(["/*.go"], ["main.go"], True, id="railway-go-root"),
        pytest.param(["/*.go"], ["cmd/main.go"], False, id="railway-go-not-below"),
        pytest.param(["**", "!/*.md"], ["README.md"], False, id="railway-markdown-excluded"),
        pytest.param(["**", "!/*.md"], ["README.md", "app.py"], True, id="railway-one-other-file"),
        pytest.param(["**", "!/*.md"], ["docs/guide.md"], True, id="railway-markdown-below-root"),
        pytest.param(["/app/**.js"], ["app/a/b.js"], True, id="railway-double-star-in-segment"),
        pytest.param(["/packages/backend"], ["packages/backend/src/x.py"], True, id="directory-covers-files"),
        pytest.param(["/packages/backend"], ["packages/frontend/x.ts"], False, id="other-directory"),
        # gitignore rules
        pytest.param(["*.py"], ["a/b/c.py"], True, id="no-slash-any-depth"),
        pytest.param(["api"], ["services/api/main.go"], True, id="name-any-depth"),
        pytest.param(["api/*.go"], ["services/api/main.go"], False, id="inner-slash-anchors"),
        pytest.param(["api/*.go"], ["api/main.go"], True, id="inner-slash-from-root"),
        pytest.param(["*.go"], ["api/x/main.go"], True, id="star-at-any-depth"),
        pytest.param(["/api/*.go"], ["api/x/main.go"], False, id="star-stays-in-segment"),
        pytest.param(["docs/"], ["docs/index.md"], True, id="directory-only"),
        pytest.param(["docs/"], ["docs"], False, id="directory-only-not-a-file"),
        pytest.param(["**/test/**"], ["a/test/b.py"], True, id="double-star-both-sides"),
        pytest.param(["a/**/b"], ["a/b"], True, id="double-star-zero-dirs"),
        pytest.param(["a/**/b"], ["a/x/y/b"], True, id="double-star-many-dirs"),
        pytest.param(["file?.txt"], ["file1.txt"], True, id="question-mark"),
        pytest.param(["file?.txt"], ["file/.txt"], False, id="question-mark-not-slash"),
        pytest.param(["/v[0-9].txt"], ["v7.txt"], True, id="class-range"),
        pytest.param(["/v[!0-9].txt"], ["v7.txt"], False, id="class-negated"),
        pytest.param(["/v[!0-9].txt"], ["vx.txt"], True, id="class-negated-other"),
        pytest.param(["/a[/]b"], ["a/b"], False, id="class-never-slash"),
        pytest.param(["/[]]x"], ["]x"], True, id="class-leading-bracket"),
        pytest.param(["/[x"], ["[x"], True, id="unclosed-bracket-literal"),
        pytest.param(["/a+b(c).txt"], ["a+b(c).txt"], True, id="regex-characters-literal"),
        pytest.param(["/\\*.txt"], ["*.txt"], True, id="escaped-star"),
        pytest.param(["/\\*.txt"], ["a.txt"], False, id="escaped-star-literal"),
        pytest.param(["\\!important"], ["!important"], True, id="escaped-bang"),
        pytest.param(["\\#notes"], ["#notes"], True, id="escaped-hash"),
        # order and exclusions
        pytest.param(["/api/**", "!/api/docs/**"], ["api/docs/x.md"], False, id="excluded"),
        pytest.param(["/api/**", "!/api/docs/**", "/api/docs/openapi.yaml"], ["api/docs/openapi.yaml"], True,
                     id="re-included-after-exclusion"),
        pytest.param(["!/api/docs/**", "/api/**"], ["api/docs/x.md"], True, id="last-match-wins"),
        pytest.param(["/api"], ["api/docs/x.md"], True, id="directory-match-watches"),
        pytest.param(["/docs", "!/docs/keep.md"], ["docs/keep.md"], False, id="exclusion-inside-matched-dir"),
        pytest.param(["!/docs/**"], ["docs/a.md"], False, id="only-exclusions"),
        # nothing to compare
        pytest.param([], ["anything"], True, id="no-patterns"),
        pytest.param(["", "  ", "# comment"], ["anything"], True, id="only-blanks-and-comments"),
        pytest.param(["/api/**"], None, True, id="unknown-changes"),
        pytest.param(["/api/**"], [], False, id="no-changes"),
        pytest.param(["  /api/**  "], ["api/x"], True, id="whitespace-trimmed"),
        pytest.param(["/api/**"], ["/api/x"], True, id="leading-slash-in-path"),
    ],
)  # fmt: skip
def test_matches_watch_patterns(patterns: list[str], changed: list[str] | None, expected: bool) -> None:
    assert matches_watch_patterns(patterns, changed) is expected


segment = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
paths = st.lists(segment, min_size=1, max_size=5).map("/".join)
path_sets = st.lists(paths, min_size=1, max_size=5)
globs = st.lists(st.sampled_from(["*", "**", "/a*", "!b/**", "x?", "/**/0", "c/", "[a-c]*"]), max_size=5)


@given(changed=path_sets)
def test_double_star_watches_every_change(changed: list[str]) -> None:
    assert matches_watch_patterns(["**"], changed)


@given(patterns=globs, changed=path_sets)
def test_a_final_exclusion_of_everything_watches_nothing(patterns: list[str], changed: list[str]) -> None:
    assert not matches_watch_patterns([*patterns, "!**"], changed)


@given(path=paths)
def test_a_path_anchored_literally_matches_itself_and_its_files(path: str) -> None:
    assert matches_watch_patterns([f"/{path}"], [path])
    assert matches_watch_patterns([f"/{path}"], [f"{path}/inside/file"])


@given(patterns=globs, changed=path_sets)
def test_a_change_matches_exactly_when_one_of_its_paths_does(patterns: list[str], changed: list[str]) -> None:
    assert matches_watch_patterns(patterns, changed) == any(
        matches_watch_patterns(patterns, [path]) for path in changed
    )
