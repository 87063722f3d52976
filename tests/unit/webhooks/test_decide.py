"""decide_push: which pushes deploy a service tracking a branch, and why the others do not."""

from __future__ import annotations

import pytest

from core.webhooks import DeployCommit, Provider, Push, Skip, decide_push, parse_events
from tests.unit.webhooks.support import EVENT_HEADER, body_of


def push(name: str, event: str = "push") -> Push:
    provider = Provider(name.split("/")[0])
    (parsed,) = parse_events(provider, {EVENT_HEADER[provider]: event}, body_of(name))
    assert isinstance(parsed, Push)
    return parsed


def test_a_push_to_the_tracked_branch_deploys_that_exact_commit() -> None:
    decision = decide_push(push("github/push.json"), "main")

    assert isinstance(decision, DeployCommit)
    assert decision.sha == "366701fde727cb7a9e7f21eb88264f59f6f9b89c"
    assert decision.branch == "main"
    assert decision.commit is not None
    assert (decision.commit.author_name, decision.commit.message.splitlines()[0]) == (
        "Philipp",
        "Fix multiline secrets replacer (#700)",
    )


@pytest.mark.parametrize(
    ("name", "event", "branch", "patterns", "reason"),
    [
        pytest.param("github/push.json", "push", "production", (),
                     "push to branch main; this service deploys production", id="other-branch"),
        pytest.param("github/push.branch-deleted.json", "push", "feature-branch", (),
                     "branch feature-branch was deleted: nothing to deploy", id="deleted-branch"),
        pytest.param("gitlab/push.branch-deleted.json", "Push Hook", "feature", (),
                     "branch feature was deleted: nothing to deploy", id="gitlab-deleted-branch"),
        pytest.param("bitbucket/repo_push.branch-deleted.json", "repo:push", "feature/test", (),
                     "branch feature/test was deleted: nothing to deploy", id="bitbucket-deleted-branch"),
        pytest.param("github/push.tag.json", "push", "main", (),
                     "tag the-tag-v1 pushed: tags do not deploy", id="tag"),
        pytest.param("github/push.tag-deleted.json", "push", "main", (),
                     "tag simple-tag deleted: tags do not deploy", id="tag-deleted"),
        pytest.param("gitlab/tag_push.json", "Tag Push Hook", "master", (),
                     "tag v1.0.0 pushed: tags do not deploy", id="gitlab-tag"),
        pytest.param("github/push.json", "push", "main", ["/web/**"],
                     "none of the 2 changed files matches the watch patterns", id="watch-patterns"),
    ],
)  # fmt: skip
def test_pushes_that_do_not_deploy_say_why(
    name: str, event: str, branch: str, patterns: list[str], reason: str
) -> None:
    assert decide_push(push(name, event), branch, patterns) == Skip(reason=reason)


@pytest.mark.parametrize(
    ("name", "event", "branch", "patterns"),
    [
        pytest.param("github/push.json", "push", "main", ["/pipeline/**"], id="watched-file-changed"),
        pytest.param("github/push.branch-created.json", "push", "master", ["/web/**"], id="new-branch"),
        pytest.param("gitlab/push.json", "Push Hook", "master", ["/web/**"], id="gitlab-cut-short"),
        pytest.param("gitea/push.json", "push", "main", ["aaa"], id="gitea-watched"),
        pytest.param("bitbucket/repo_push.json", "repo:push", "main", ["/web/**"], id="bitbucket-no-files"),
    ],
)  # fmt: skip
def test_pushes_that_deploy(name: str, event: str, branch: str, patterns: list[str]) -> None:
    decision = decide_push(push(name, event), branch, patterns)
    assert isinstance(decision, DeployCommit)
    assert decision.sha == push(name, event).after
