"""A payload field holding a control character is a PayloadError (answered 400) naming its key path: what
is read from a delivery reaches the database, git and the build. Commit messages keep their line breaks
and tabs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from core.webhooks import PayloadError, Provider, Push, parse_events
from tests.unit.webhooks.support import EVENT_HEADER, json_of

Payload = dict[str, Any]


def parse(provider: Provider, event: str, payload: Payload) -> Any:
    return parse_events(provider, {EVENT_HEADER[provider]: event}, json.dumps(payload).encode())


def set_ref(payload: Payload) -> None:
    payload["ref"] = "refs/heads/ma\x00in"


def set_message(payload: Payload) -> None:
    payload["head_commit"]["message"] = "Fix\n\nthe\x00bug"


def set_clone_url(payload: Payload) -> None:
    payload["repository"]["clone_url"] = "http://127.0.0.1:3000/acme/shop\x01.git"


def set_bitbucket_branch(payload: Payload) -> None:
    payload["push"]["changes"][0]["new"]["name"] = "ma\x7fin"


def set_title(payload: Payload) -> None:
    payload["pull_request"]["title"] = "\x1b[31mred"


@pytest.mark.parametrize(
    ("fixture", "provider", "event", "change", "key"),
    [
        pytest.param("github/push.json", Provider.GITHUB, "push", set_ref, "ref", id="github-ref"),
        pytest.param(
            "github/push.json",
            Provider.GITHUB,
            "push",
            set_message,
            "head_commit.message",
            id="github-message",
        ),
        pytest.param("gitlab/push.json", Provider.GITLAB, "Push Hook", set_ref, "ref", id="gitlab-ref"),
        pytest.param(
            "gitea/push.json",
            Provider.GITEA,
            "push",
            set_clone_url,
            "repository.clone_url",
            id="gitea-clone-url",
        ),
        pytest.param(
            "bitbucket/repo_push.json",
            Provider.BITBUCKET,
            "repo:push",
            set_bitbucket_branch,
            "push.changes[0].new.name",
            id="bitbucket-branch",
        ),
        pytest.param(
            "github/pull_request.opened.json",
            Provider.GITHUB,
            "pull_request",
            set_title,
            "pull_request.title",
            id="github-pull-request-title",
        ),
    ],
)
def test_a_control_character_in_a_payload_field_names_its_key(
    fixture: str, provider: Provider, event: str, change: Callable[[Payload], None], key: str
) -> None:
    payload = json_of(fixture)
    change(payload)
    with pytest.raises(PayloadError) as caught:
        parse(provider, event, payload)
    assert caught.value.reason.startswith(f"{key}: contains the control character U+00")


def test_a_commit_message_keeps_its_line_breaks_and_tabs() -> None:
    payload = json_of("github/push.json")
    payload["head_commit"]["message"] = "Subject\r\n\n\tindented body"
    [push] = parse(Provider.GITHUB, "push", payload)
    assert isinstance(push, Push) and push.head_commit is not None
    assert push.head_commit.message == "Subject\r\n\n\tindented body"
