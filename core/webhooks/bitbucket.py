"""Bitbucket Cloud webhooks.

Headers: `X-Event-Key` names the event, `X-Request-UUID` is the delivery id (`X-Hook-UUID` names the webhook
and is the same for every delivery, so it is never used), `X-Hub-Signature` (not `-256`) is `sha256=` + the
hex HMAC-SHA256 of the raw body, sent only when the webhook has a secret.

| `X-Event-Key` | becomes |
| --- | --- |
| `repo:push` | one Push per entry of `push.changes` (a single delivery can move several refs) |
| `pullrequest:created` / `updated` / `fulfilled` / `rejected` | PullRequest opened/updated/merged/closed |
| `diagnostics:ping` | Ping |
| anything else | Ignored |

Bitbucket sends no file lists, so `changed_paths` is always None, and it abbreviates pull request head
commits to 12 hex digits. `pullrequest:updated` also fires for title and description edits: the head sha
tells them apart.
"""

from __future__ import annotations

import re

from core.webhooks.common import (
    ZERO_SHA,
    Fields,
    Headers,
    PayloadError,
    check_hmac_sha256,
    header,
    require_header,
)
from core.webhooks.events import (
    Commit,
    Ignored,
    Ping,
    PullRequest,
    PullRequestAction,
    Push,
    Repository,
    WebhookEvent,
)

EVENT = "X-Event-Key"
DELIVERY = "X-Request-UUID"
SIGNATURE = "X-Hub-Signature"

_ACTIONS = {
    "pullrequest:created": PullRequestAction.OPENED,
    "pullrequest:updated": PullRequestAction.UPDATED,
    "pullrequest:fulfilled": PullRequestAction.MERGED,
    "pullrequest:rejected": PullRequestAction.CLOSED,
}
_REF_PREFIXES = {"branch": "refs/heads/", "tag": "refs/tags/"}
_RAW_AUTHOR = re.compile(r"^(?P<name>.*?)\s*<(?P<email>[^<>]*)>\s*$")


def verify(headers: Headers, body: bytes, secret: str) -> None:
    check_hmac_sha256(SIGNATURE, header(headers, SIGNATURE), body, secret, prefix="sha256=")


def delivery_id(headers: Headers) -> str | None:
    return header(headers, DELIVERY) or None


def parse(headers: Headers, body: bytes) -> tuple[WebhookEvent, ...]:
    event = require_header(headers, EVENT)
    payload = Fields.decode(body)
    if event == "diagnostics:ping":
        return (Ping(event=event),)
    if event == "repo:push":
        repository = _repository(payload.obj("repository"))
        changes = payload.obj("push").objs("changes")
        if not changes:
            return (Ignored(event=event, reason="push without ref changes"),)
        return tuple(_push(repository, change) for change in changes)
    if event in _ACTIONS:
        return (_pull_request(payload, _ACTIONS[event]),)
    return (Ignored(event=event, reason=f"{event} events are not handled"),)


def _repository(repo: Fields) -> Repository:
    html_url = repo.obj("links").obj("html").text("href")
    return Repository(full_name=repo.text("full_name"), clone_url=f"{html_url}.git", html_url=html_url)


def _push(repository: Repository, change: Fields) -> WebhookEvent:
    old, new = change.opt_obj("old"), change.opt_obj("new")
    state = new or old
    if state is None:
        raise PayloadError(f"{change.path}: old and new are both null")
    kind = state.text("type")
    if kind not in _REF_PREFIXES:
        return Ignored(event="repo:push", reason=f"pushes of {kind} refs are not handled")
    ref = _REF_PREFIXES[kind] + state.text("name")
    return Push(
        repository=repository,
        ref=ref,
        branch=ref.removeprefix("refs/heads/") if kind == "branch" else None,
        tag=ref.removeprefix("refs/tags/") if kind == "tag" else None,
        before=old.obj("target").text("hash") if old else ZERO_SHA,
        after=new.obj("target").text("hash") if new else ZERO_SHA,
        created=change.flag("created"),
        deleted=change.flag("closed"),
        forced=change.flag("forced"),
        head_commit=_commit(new.obj("target")) if new else None,
        changed_paths=None,
    )


def _commit(target: Fields) -> Commit:
    author = target.obj("author")
    raw = author.opt_text("raw") or ""
    parsed = _RAW_AUTHOR.match(raw)
    user = author.opt_obj("user")
    name = parsed.group("name") if parsed else raw
    if not name and user is not None:
        name = user.text("display_name")
    return Commit(
        sha=target.text("hash"),
        message=target.text("message", multiline=True),
        author_name=name,
        author_email=(parsed.group("email") or None) if parsed else None,
    )


def _pull_request(payload: Fields, action: PullRequestAction) -> PullRequest:
    pr = payload.obj("pullrequest")
    source, destination = pr.obj("source"), pr.obj("destination")
    source_repo = source.opt_obj("repository")  # null when the fork was deleted
    repository = _repository(payload.obj("repository"))
    author = pr.obj("author")
    return PullRequest(
        repository=repository,
        number=pr.number("id"),
        action=action,
        title=pr.text("title"),
        url=pr.obj("links").obj("html").text("href"),
        author=author.opt_text("nickname") or author.opt_text("display_name"),
        head_branch=source.obj("branch").text("name"),
        head_sha=source.obj("commit").text("hash"),
        head_repository=_repository(source_repo) if source_repo else None,
        from_fork=source_repo is None
        or source_repo.text("full_name") != destination.obj("repository").text("full_name"),
        base_branch=destination.obj("branch").text("name"),
    )
