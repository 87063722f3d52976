"""When a push's changed files are known (a set) and when they are not (None: anything may have changed)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from core.webhooks import Provider, Push, parse_events
from tests.unit.webhooks.support import EVENT_HEADER, json_of


def push_of(provider: Provider, payload: dict[str, Any], event: str = "push") -> Push:
    (push,) = parse_events(provider, {EVENT_HEADER[provider]: event}, json.dumps(payload).encode())
    assert isinstance(push, Push)
    return push


def github(**changes: Any) -> dict[str, Any]:
    return {**json_of("github/push.json"), **changes}


def commit(added: list[str] | None = None, modified: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    base = copy.deepcopy(json_of("github/push.json")["commits"][0])
    return {**base, "added": added or [], "modified": modified or [], "removed": [], **extra}


GITHUB_FILES = frozenset({"pipeline/shared/replace_secrets.go", "pipeline/shared/replace_secrets_test.go"})


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(github(), GITHUB_FILES, id="listed"),
        pytest.param(github(forced=True), None, id="forced"),
        pytest.param(github(created=True), None, id="created"),
        pytest.param(
            github(commits=[commit(added=[f"f{i}"]) for i in range(19)]),
            frozenset(f"f{i}" for i in range(19)),
            id="19-commits",
        ),
        pytest.param(github(commits=[commit(added=[f"f{i}"]) for i in range(20)]), None, id="20-commits"),
        pytest.param(github(commits=[commit(modified=[f"{i}" for i in range(3000)])]), None, id="3000-files"),
        pytest.param(github(commits=[commit(), commit(added=["a"])]), None, id="empty-commit"),
        pytest.param(
            github(commits=[commit(added=["a"]), {**commit(), "removed": ["b"]}]),
            frozenset({"a", "b"}),
            id="removed-counts",
        ),
        pytest.param(github(commits=[]), frozenset(), id="no-commits"),
    ],
)
def test_github(payload: dict[str, Any], expected: frozenset[str] | None) -> None:
    assert push_of(Provider.GITHUB, payload).changed_paths == expected


def test_gitlab_lists_files_when_every_pushed_commit_is_listed() -> None:
    payload = {**json_of("gitlab/push.json"), "total_commits_count": 2}
    assert push_of(Provider.GITLAB, payload, "Push Hook").changed_paths == {
        "CHANGELOG",
        "app/controller/application.rb",
    }


def test_gitlab_cut_short_commit_list_is_unknown() -> None:
    assert json_of("gitlab/push.json")["total_commits_count"] == 4
    assert push_of(Provider.GITLAB, json_of("gitlab/push.json"), "Push Hook").changed_paths is None


def test_gitlab_head_commit_not_listed() -> None:
    payload = {**json_of("gitlab/push.json"), "after": "f" * 40}
    assert push_of(Provider.GITLAB, payload, "Push Hook").head_commit is None


def test_gitea_without_total_commits_is_unknown() -> None:
    payload = json_of("gitea/push.json")
    del payload["total_commits"]
    assert push_of(Provider.GITEA, payload).changed_paths is None


def test_gitea_cut_short_commit_list_is_unknown() -> None:
    payload = {**json_of("gitea/push.json"), "total_commits": 9}
    assert push_of(Provider.GITEA, payload).changed_paths is None


def test_gitea_head_commit_from_the_list_when_absent() -> None:
    payload = json_of("gitea/push.json")
    del payload["head_commit"]
    head = push_of(Provider.GITEA, payload).head_commit
    assert head is not None and head.sha == payload["after"]


def test_bitbucket_push_of_several_refs_is_one_push_per_ref() -> None:
    payload = json_of("bitbucket/repo_push.json")
    deleted = json_of("bitbucket/repo_push.branch-deleted.json")["push"]["changes"][0]
    payload["push"]["changes"].append(deleted)

    pushes = parse_events(Provider.BITBUCKET, {"X-Event-Key": "repo:push"}, json.dumps(payload).encode())

    assert all(isinstance(push, Push) for push in pushes)
    assert [(push.branch, push.deleted) for push in pushes if isinstance(push, Push)] == [
        ("main", False),
        ("feature/test", True),
    ]


def test_bitbucket_push_without_changes_is_ignored() -> None:
    payload = json_of("bitbucket/repo_push.json")
    payload["push"]["changes"] = []
    (event,) = parse_events(Provider.BITBUCKET, {"X-Event-Key": "repo:push"}, json.dumps(payload).encode())
    assert event.kind == "ignored"
