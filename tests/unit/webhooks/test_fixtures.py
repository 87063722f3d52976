"""Every saved real payload parses to the event it describes (fixtures/SOURCES.md says what each file is)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from core.webhooks import Ignored, Ping, PullRequest, PullRequestAction, Push, WebhookEvent, parse_events
from tests.unit.webhooks.support import EVENT_HEADER, FIXTURES, body_of, provider_of

ZERO = "0" * 40
OPENED, REOPENED, UPDATED = PullRequestAction.OPENED, PullRequestAction.REOPENED, PullRequestAction.UPDATED
CLOSED, MERGED = PullRequestAction.CLOSED, PullRequestAction.MERGED


def case(name: str, event_name: str, kind: type, **fields: Any) -> Any:
    return pytest.param(name, event_name, kind, fields, id=name.removesuffix(".json"))


FIXTURE_CASES = [
    # --- GitHub --------------------------------------------------------------------------------------------
    case("github/ping.json", "ping", Ping, event="ping"),
    case(
        "github/push.json", "push", Push,
        ref="refs/heads/main", branch="main", tag=None,
        before="2f780193b136b72bfea4eeb640786a8c4450c7a2", after="366701fde727cb7a9e7f21eb88264f59f6f9b89c",
        created=False, deleted=False, forced=False,
        changed_paths=frozenset(
            {"pipeline/shared/replace_secrets.go", "pipeline/shared/replace_secrets_test.go"}
        ),
        **{
            "head_commit.sha": "366701fde727cb7a9e7f21eb88264f59f6f9b89c",
            "head_commit.message": "Fix multiline secrets replacer (#700)\n\n* Fix multiline secrets replacer"
            "\r\n\r\n* Add tests",
            "head_commit.author_name": "Philipp",
            "head_commit.author_email": "admin@philipp.info",
            "repository.full_name": "woodpecker-ci/woodpecker",
            "repository.clone_url": "https://github.com/woodpecker-ci/woodpecker.git",
            "repository.html_url": "https://github.com/woodpecker-ci/woodpecker",
        },
    ),
    case(
        "github/push.branch-created.json", "push", Push,
        branch="master", before=ZERO, after="6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        created=True, deleted=False, changed_paths=None, **{"head_commit.message": "Initial commit"},
    ),
    case(
        "github/push.branch-deleted.json", "push", Push,
        branch="feature-branch", after=ZERO, deleted=True, head_commit=None, changed_paths=None,
    ),
    case(
        "github/push.tag.json", "push", Push,
        ref="refs/tags/the-tag-v1", branch=None, tag="the-tag-v1", created=True, deleted=False,
        after="67012991d6c69b1c58378346fca366b864d8d1a1",
    ),
    case(
        "github/push.tag-deleted.json", "push", Push,
        branch=None, tag="simple-tag", deleted=True, after=ZERO, head_commit=None,
    ),
    case(
        "github/pull_request.opened.json", "pull_request", PullRequest,
        number=2, action=OPENED, head_branch="changes", head_sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        base_branch="master", title="Update the README with new information.", author="Codertocat",
        url="https://github.com/Codertocat/Hello-World/pull/2", from_fork=False,
        **{"head_repository.clone_url": "https://github.com/Codertocat/Hello-World.git"},
    ),
    case(
        "github/pull_request.synchronize.json", "pull_request", PullRequest,
        number=2, action=UPDATED, head_sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    ),
    case("github/pull_request.reopened.json", "pull_request", PullRequest, number=2, action=REOPENED),
    case(
        "github/pull_request.closed.merged.json", "pull_request", PullRequest,
        number=62, action=MERGED, head_branch="anbraten-patch-3", base_branch="main",
        head_sha="c88b9ee719285134957cbc698c9b7ef9b78007bf", author="anbraten",
    ),
    case("github/pull_request.closed.unmerged.json", "pull_request", PullRequest, number=2, action=CLOSED),
    case("github/create.json", "create", Ignored, event="create"),
    case("github/create.branch.json", "create", Ignored, event="create"),
    case("github/delete.json", "delete", Ignored, event="delete"),
    case("github/delete.branch.json", "delete", Ignored, event="delete"),
    # --- GitLab --------------------------------------------------------------------------------------------
    case(
        "gitlab/push.json", "Push Hook", Push,
        ref="refs/heads/master", branch="master", before="95790bf891e76fee5e1747ab589903a6a1f80f22",
        after="da1560886d4f094c3e6c9ef40349f7d38b5d27d7", created=False, deleted=False, forced=None,
        changed_paths=None,  # 2 of total_commits_count 4 listed
        **{
            "head_commit.sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "head_commit.message": "fixed readme",
            "head_commit.author_name": "GitLab dev user",
            "repository.full_name": "mike/diaspora",
            "repository.clone_url": "http://example.com/mike/diaspora.git",
            "repository.html_url": "http://example.com/mike/diaspora",
        },
    ),
    case(
        "gitlab/push.branch-deleted.json", "Push Hook", Push,
        branch="feature", after=ZERO, deleted=True, head_commit=None,
    ),
    case(
        "gitlab/tag_push.json", "Tag Push Hook", Push,
        ref="refs/tags/v1.0.0", branch=None, tag="v1.0.0", created=True,
        after="82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
    ),
    case(
        "gitlab/merge_request.open.json", "Merge Request Hook", PullRequest,
        number=1, action=OPENED, head_branch="ms-viewport", base_branch="master", title="MS-Viewport",
        head_sha="da1560886d4f094c3e6c9ef40349f7d38b5d27d7", url="http://example.com/diaspora/merge_requests/1",
        author=None,  # the acting user (id 1) is not the author (author_id 51)
        from_fork=False,
        **{"head_repository.clone_url": "http://example.com/awesome_space/awesome_project.git"},
    ),
    case(
        "gitlab/merge_request.update.json", "Merge Request Hook", PullRequest,
        number=3, action=UPDATED, head_branch="anbraten-main-patch-05373",
        head_sha="c136499ec574e1034b24c5d306de9acda3005367", author="anbraten",
    ),
    case(
        "gitlab/merge_request.merge.json", "Merge Request Hook", PullRequest,
        number=4, action=MERGED, head_branch="patch-1", base_branch="main",
    ),
    case("gitlab/merge_request.close.json", "Merge Request Hook", PullRequest, number=4, action=CLOSED),
    # --- Gitea ---------------------------------------------------------------------------------------------
    case(
        "gitea/push.json", "push", Push,
        branch="main", after="29be01c073851cf0db0c6a466e396b725a670453", forced=None,
        changed_paths=frozenset({"aa", "aaa"}),
        **{
            "head_commit.sha": "29be01c073851cf0db0c6a466e396b725a670453",
            "head_commit.author_email": "6543@obermui.de",
            "repository.clone_url": "http://127.0.0.1:3000/Test-CI/multi-line-secrets.git",
        },
    ),
    case(
        "gitea/push.docs-example.json", "push", Push,
        branch="develop", after="bffeb74224043ba2feb48d137756c8a9331c449a",
        changed_paths=None,  # no total_commits and no file lists
        **{"head_commit.message": "Webhooks Yay!"},
    ),
    case(
        "gitea/pull_request.opened.json", "pull_request", PullRequest,
        number=2, action=OPENED, head_branch="master", base_branch="master", author="example2",
        head_sha="48e773f892a831faa47c0a160d1b7f0cd369ae2a", from_fork=True,
        **{
            "head_repository.clone_url": "http://localhost:3000/example2/example.git",
            "repository.clone_url": "http://localhost:3000/example/example.git",
        },
    ),
    case(
        "gitea/pull_request.synchronized.json", "pull_request", PullRequest,
        number=2, action=UPDATED, head_sha="788ed8d02d3b7fcfcf6386dbcbca696aa1d4dc25", from_fork=False,
        # the payload leaves head.repo out; head and base repo ids are equal
        **{"head_repository.clone_url": "http://127.0.0.1:3000/Test-CI/multi-line-secrets.git"},
    ),
    case("gitea/pull_request.closed.json", "pull_request", PullRequest, number=1, action=CLOSED),
    case("gitea/pull_request.closed.merged.json", "pull_request", PullRequest, number=1, action=MERGED),
    # --- Bitbucket Cloud -----------------------------------------------------------------------------------
    case(
        "bitbucket/repo_push.json", "repo:push", Push,
        ref="refs/heads/main", branch="main", before="a51241ae1f00cbe728930db48e890b18fd527f99",
        after="c14c1bb05dfb1fdcdf06b31485fff61b0ea44277", created=False, deleted=False, forced=False,
        changed_paths=None,
        **{
            "head_commit.message": "a\n",
            "head_commit.author_name": "Martin Herren",
            "head_commit.author_email": "martin.herren@yyy.com",
            "repository.clone_url": "https://bitbucket.org/martinherren1984/publictestrepo.git",
        },
    ),
    case(
        "bitbucket/repo_push.forced.json", "repo:push", Push,
        branch="feature/issue-819", forced=True, after="5ecffa3874e96920f24a2b3c0d0038e47d5cd1a4",
    ),
    case(
        "bitbucket/repo_push.branch-deleted.json", "repo:push", Push,
        branch="feature/test", deleted=True, after=ZERO, before="174561d625c9623b60d8aba09b7f08ddc9df45cd",
        head_commit=None,
    ),
    case(
        "bitbucket/repo_push.tag-created.json", "repo:push", Push,
        ref="refs/tags/simple-tag", branch=None, tag="simple-tag", created=True, before=ZERO,
    ),
    case(
        "bitbucket/repo_push.signed.raw.json", "repo:push", Push,
        branch="feature/webhook", created=True, after="d7f300a32270053bdfd97a6d64113f58202c33e7",
    ),
    case(
        "bitbucket/pullrequest_created.json", "pullrequest:created", PullRequest,
        number=735, action=OPENED, head_branch="feature/test", base_branch="master", head_sha="d31df3425c5b",
        title="BUILD test", author="Nikolas Falco", from_fork=False,
        url="https://bitbucket.org/amuniz/test-repos/pull-requests/735",
        **{"head_repository.clone_url": "https://bitbucket.org/amuniz/test-repos.git"},
    ),
    case(
        "bitbucket/pullrequest_fulfilled.json", "pullrequest:fulfilled", PullRequest,
        number=1, action=MERGED, head_branch="patch-2", base_branch="main",
    ),
]  # fmt: skip


def attribute(event: object, dotted: str) -> object:
    value = event
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


@pytest.mark.parametrize(("name", "event_name", "kind", "fields"), FIXTURE_CASES)
def test_fixture_parses_to_its_event(name: str, event_name: str, kind: type, fields: dict[str, Any]) -> None:
    provider = provider_of(name)
    events = parse_events(provider, {EVENT_HEADER[provider]: event_name}, body_of(name))

    assert len(events) == 1
    (event,) = events
    assert isinstance(event, kind)
    assert {key: attribute(event, key) for key in fields} == fields


def test_every_fixture_file_has_a_case() -> None:
    files = {str(path.relative_to(FIXTURES)) for path in FIXTURES.glob("*/*.json")}
    assert files == {param.values[0] for param in FIXTURE_CASES}


def test_events_round_trip_through_json() -> None:
    """The events cross process boundaries (API answers, workflow inputs): `kind` tells them apart."""
    adapter: TypeAdapter[WebhookEvent] = TypeAdapter(WebhookEvent)
    for param in FIXTURE_CASES:
        name, event_name = param.values[0], param.values[1]
        provider = provider_of(str(name))
        for event in parse_events(provider, {EVENT_HEADER[provider]: str(event_name)}, body_of(str(name))):
            assert adapter.validate_json(adapter.dump_json(event)) == event
