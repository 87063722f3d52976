"""Delivery ids (the key deliveries are de-duplicated on) and what a malformed or unknown delivery becomes."""

from __future__ import annotations

import json

import pytest

from core.webhooks import Ignored, PayloadError, Provider, delivery_id, parse_events
from tests.unit.webhooks.support import EVENT_HEADER, body_of, json_of

GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.mark.parametrize(
    ("provider", "headers", "expected"),
    [
        pytest.param(Provider.GITHUB, {"X-GitHub-Delivery": GUID}, GUID, id="github"),
        pytest.param(Provider.GITHUB, {"x-github-delivery": GUID}, GUID, id="github-lowercase"),
        pytest.param(
            Provider.GITLAB,
            {"Idempotency-Key": "retry-key", "X-Gitlab-Event-UUID": "event-uuid"},
            "retry-key",
            id="gitlab-idempotency-key-first",
        ),
        pytest.param(Provider.GITLAB, {"X-Gitlab-Event-UUID": "event"}, "event", id="gitlab-before-17.4"),
        pytest.param(Provider.GITLAB, {"X-Gitlab-Webhook-UUID": "hook"}, None, id="gitlab-webhook-uuid"),
        pytest.param(Provider.GITEA, {"X-Gitea-Delivery": GUID}, GUID, id="gitea"),
        pytest.param(Provider.GITEA, {"X-Forgejo-Delivery": GUID}, GUID, id="forgejo"),
        pytest.param(Provider.BITBUCKET, {"X-Request-UUID": GUID}, GUID, id="bitbucket"),
        pytest.param(Provider.BITBUCKET, {"X-Hook-UUID": "hook"}, None, id="bitbucket-hook-uuid"),
        pytest.param(Provider.GITHUB, {}, None, id="none-sent"),
        pytest.param(Provider.GITHUB, {"X-GitHub-Delivery": ""}, None, id="empty"),
    ],
)
def test_delivery_id(provider: Provider, headers: dict[str, str], expected: str | None) -> None:
    assert delivery_id(provider, headers) == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"{not json", "body is not JSON", id="broken"),
        pytest.param(b"payload=%7B%7D", "body is not JSON", id="form-encoded"),
        pytest.param(b"\xff\xfe\x00", "body is not JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "body is a JSON list, not an object", id="list"),
        pytest.param(b"", "body is not JSON", id="empty"),
    ],
)
@pytest.mark.parametrize("provider", list(Provider))
def test_a_body_that_is_not_a_json_object(provider: Provider, body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=f"^{reason}"):
        parse_events(provider, {EVENT_HEADER[provider]: "push"}, body)


def test_a_form_encoded_body_says_how_to_configure_the_webhook() -> None:
    with pytest.raises(PayloadError, match="content type as application/json"):
        parse_events(Provider.GITHUB, {"X-GitHub-Event": "push"}, b"payload=%7B%7D")


@pytest.mark.parametrize("provider", list(Provider))
def test_a_missing_event_header_is_named(provider: Provider) -> None:
    with pytest.raises(PayloadError, match=f"^missing {EVENT_HEADER[provider]} header$"):
        parse_events(provider, {}, b"{}")


def without(name: str, dotted: str) -> bytes:
    """The fixture `name` with the key at `dotted` (`a.b.0.c`) removed."""
    data = json_of(name)
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    del node[last]
    return json.dumps(data).encode()


def replaced(name: str, dotted: str, value: object) -> bytes:
    data = json_of(name)
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("fixture", "event", "body", "reason"),
    [
        pytest.param(
            "github/push.json", "push", without("github/push.json", "after"), "after: missing",
            id="github-after",
        ),
        pytest.param(
            "github/push.json", "push",
            replaced("github/push.json", "commits.0.modified", "README.md"),
            "commits[0].modified: expected a list, got str", id="github-file-list-type",
        ),
        pytest.param(
            "github/push.json", "push",
            replaced("github/push.json", "commits.0.added", [1]),
            "commits[0].added[0]: expected a string, got int", id="github-file-list-item",
        ),
        pytest.param(
            "github/pull_request.opened.json", "pull_request",
            without("github/pull_request.opened.json", "pull_request.head.sha"),
            "pull_request.head.sha: missing", id="github-head-sha",
        ),
        pytest.param(
            "github/pull_request.opened.json", "pull_request",
            replaced("github/pull_request.opened.json", "pull_request.number", "2"),
            "pull_request.number: expected an integer, got str", id="github-number-type",
        ),
        pytest.param(
            "github/push.json", "push", replaced("github/push.json", "deleted", None),
            "deleted: expected true or false, got null", id="github-null-flag",
        ),
        pytest.param(
            "gitlab/push.json", "Push Hook", without("gitlab/push.json", "project.git_http_url"),
            "project.git_http_url: missing", id="gitlab-clone-url",
        ),
        pytest.param(
            "gitlab/merge_request.update.json", "Merge Request Hook",
            without("gitlab/merge_request.update.json", "object_attributes.last_commit"),
            "object_attributes.last_commit: missing", id="gitlab-last-commit",
        ),
        pytest.param(
            "gitea/pull_request.opened.json", "pull_request",
            without("gitea/pull_request.opened.json", "pull_request.base.repo_id"),
            "pull_request.base.repo_id: missing", id="gitea-base-repo-id",
        ),
        pytest.param(
            "bitbucket/repo_push.json", "repo:push",
            without("bitbucket/repo_push.json", "push.changes.0.new.target.hash"),
            "push.changes[0].new.target.hash: missing", id="bitbucket-new-hash",
        ),
        pytest.param(
            "bitbucket/repo_push.json", "repo:push",
            replaced(
                "bitbucket/repo_push.json", "push.changes", [{"old": None, "new": None, "created": False}]
            ),
            "push.changes[0]: old and new are both null", id="bitbucket-empty-change",
        ),
        pytest.param(
            "bitbucket/pullrequest_created.json", "pullrequest:created",
            without("bitbucket/pullrequest_created.json", "pullrequest.source.commit"),
            "pullrequest.source.commit: missing", id="bitbucket-source-commit",
        ),
    ],
)  # fmt: skip
def test_a_missing_or_mistyped_key_is_named(fixture: str, event: str, body: bytes, reason: str) -> None:
    provider = Provider(fixture.split("/")[0])
    with pytest.raises(PayloadError) as caught:
        parse_events(provider, {EVENT_HEADER[provider]: event}, body)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("provider", "event", "fixture", "reason"),
    [
        pytest.param(
            Provider.GITHUB, "issues", "github/ping.json", "issues events are not handled", id="github"
        ),
        pytest.param(
            Provider.GITLAB, "Issue Hook", "gitlab/push.json", "Issue Hook events are not handled",
            id="gitlab",
        ),
        pytest.param(
            Provider.GITLAB, "System Hook", "gitlab/push.json", "System Hook events are not handled",
            id="gitlab-system-hook",
        ),
        pytest.param(
            Provider.GITEA, "issues", "gitea/push.json", "issues events are not handled", id="gitea"
        ),
        pytest.param(
            Provider.GITEA, "delete", "gitea/push.json",
            "delete events are not handled: a deleted branch or tag has nothing to deploy", id="gitea-delete",
        ),
        pytest.param(
            Provider.BITBUCKET, "repo:commit_status_created", "bitbucket/repo_push.json",
            "repo:commit_status_created events are not handled", id="bitbucket",
        ),
        pytest.param(
            Provider.BITBUCKET, "pullrequest:approved", "bitbucket/pullrequest_created.json",
            "pullrequest:approved events are not handled", id="bitbucket-approved",
        ),
    ],
)  # fmt: skip
def test_unknown_events_are_ignored_with_a_reason(
    provider: Provider, event: str, fixture: str, reason: str
) -> None:
    assert parse_events(provider, {EVENT_HEADER[provider]: event}, body_of(fixture)) == (
        Ignored(event=event, reason=reason),
    )


@pytest.mark.parametrize(
    ("provider", "event", "body", "reason"),
    [
        pytest.param(
            Provider.GITHUB, "pull_request",
            replaced("github/pull_request.opened.json", "action", "labeled"),
            "pull_request action 'labeled' is not handled", id="github-labeled",
        ),
        pytest.param(
            Provider.GITHUB, "pull_request",
            replaced("github/pull_request.opened.json", "action", "edited"),
            "pull_request action 'edited' is not handled", id="github-edited",
        ),
        pytest.param(
            Provider.GITLAB, "Merge Request Hook",
            without("gitlab/merge_request.update.json", "object_attributes.oldrev"),
            "merge request updated without new commits (no oldrev): nothing to redeploy",
            id="gitlab-update-without-commits",
        ),
        pytest.param(
            Provider.GITLAB, "Merge Request Hook",
            replaced("gitlab/merge_request.open.json", "object_attributes.action", "approved"),
            "merge request action 'approved' is not handled", id="gitlab-approved",
        ),
        pytest.param(
            Provider.GITEA, "pull_request",
            replaced("gitea/pull_request.opened.json", "action", "label_updated"),
            "pull_request action 'label_updated' is not handled", id="gitea-label-updated",
        ),
    ],
)  # fmt: skip
def test_unhandled_pull_request_actions_are_ignored(
    provider: Provider, event: str, body: bytes, reason: str
) -> None:
    (ignored,) = parse_events(provider, {EVENT_HEADER[provider]: event}, body)
    assert isinstance(ignored, Ignored)
    assert ignored.reason == reason


def test_forgejo_event_header_is_understood() -> None:
    (push,) = parse_events(Provider.GITEA, {"X-Forgejo-Event": "push"}, body_of("gitea/push.json"))
    assert push.kind == "push"


def test_bitbucket_ping() -> None:
    events = parse_events(Provider.BITBUCKET, {"X-Event-Key": "diagnostics:ping"}, b"{}")
    assert [event.kind for event in events] == ["ping"]
