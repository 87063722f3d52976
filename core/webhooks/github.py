"""GitHub webhooks (github.com and GitHub Enterprise Server).

Headers: `X-GitHub-Event` names the event, `X-GitHub-Delivery` is a GUID per delivery (redeliveries keep it),
`X-Hub-Signature-256` is `sha256=` + the hex HMAC-SHA256 of the raw body. The legacy SHA-1 `X-Hub-Signature`
is never accepted.

| `X-GitHub-Event` | becomes |
| --- | --- |
| `ping` | Ping |
| `push` | Push (branches and tags; `deleted: true` for a deleted ref) |
| `pull_request` | PullRequest: `opened`, `reopened`, `synchronize` (→ updated), `closed` (→ merged/closed) |
| anything else, other actions | Ignored |
"""

from __future__ import annotations

from core.webhooks.common import (
    Fields,
    Headers,
    changed_paths,
    check_hmac_sha256,
    commit_of,
    header,
    ref_names,
    require_header,
)
from core.webhooks.events import (
    Ignored,
    Ping,
    PullRequest,
    PullRequestAction,
    Push,
    Repository,
    WebhookEvent,
)

EVENT = "X-GitHub-Event"
DELIVERY = "X-GitHub-Delivery"
SIGNATURE = "X-Hub-Signature-256"

# The payload carries no commit total. GitHub documents a 20-commit cap for timeline events and says webhook
# deliveries are not bound by it, but gives no webhook limit either: 20 or more commits are taken as possibly
# cut short, so such a push counts as "anything may have changed" (a deploy too many, never one missed).
COMMITS_CAP = 20
# GitHub reports at most 3000 changed files per commit.
FILES_CAP = 3000

_ACTIONS = {
    "opened": PullRequestAction.OPENED,
    "reopened": PullRequestAction.REOPENED,
    "synchronize": PullRequestAction.UPDATED,
}
_REASONS = {
    "create": "create events are not handled: a new branch or tag also arrives as a push event",
    "delete": "delete events are not handled: a deleted branch or tag also arrives as a push event",
}


def verify(headers: Headers, body: bytes, secret: str) -> None:
    check_hmac_sha256(SIGNATURE, header(headers, SIGNATURE), body, secret, prefix="sha256=")


def delivery_id(headers: Headers) -> str | None:
    return header(headers, DELIVERY) or None


def parse(headers: Headers, body: bytes) -> tuple[WebhookEvent, ...]:
    event = require_header(headers, EVENT)
    payload = Fields.decode(body)
    if event == "ping":
        return (Ping(event=event),)
    if event == "push":
        return (_push(payload),)
    if event == "pull_request":
        return (_pull_request(payload),)
    return (Ignored(event=event, reason=_REASONS.get(event, f"{event} events are not handled")),)


def _repository(repo: Fields) -> Repository:
    return Repository(
        full_name=repo.text("full_name"), clone_url=repo.text("clone_url"), html_url=repo.text("html_url")
    )


def _push(payload: Fields) -> Push:
    ref = payload.text("ref")
    branch, tag = ref_names(ref)
    created, deleted, forced = payload.flag("created"), payload.flag("deleted"), payload.flag("forced")
    commits = payload.objs("commits")
    head = payload.opt_obj("head_commit")
    complete = not (created or deleted or forced) and len(commits) < COMMITS_CAP
    complete = complete and not _files_capped(commits)
    return Push(
        repository=_repository(payload.obj("repository")),
        ref=ref,
        branch=branch,
        tag=tag,
        before=payload.text("before"),
        after=payload.text("after"),
        created=created,
        deleted=deleted,
        forced=forced,
        head_commit=commit_of(head) if head else None,
        changed_paths=changed_paths(commits) if complete else None,
    )


def _files_capped(commits: list[Fields]) -> bool:
    return any(
        len(commit.opt_texts(key) or ()) >= FILES_CAP
        for commit in commits
        for key in ("added", "modified", "removed")
    )


def _pull_request(payload: Fields) -> WebhookEvent:
    action = payload.text("action")
    pr = payload.obj("pull_request")
    if action == "closed":
        normalized = PullRequestAction.MERGED if pr.flag("merged") else PullRequestAction.CLOSED
    elif action in _ACTIONS:
        normalized = _ACTIONS[action]
    else:
        return Ignored(event="pull_request", reason=f"pull_request action {action!r} is not handled")
    head, base = pr.obj("head"), pr.obj("base")
    head_repo = head.opt_obj("repo")  # null when the fork was deleted
    return PullRequest(
        repository=_repository(payload.obj("repository")),
        number=pr.number("number"),
        action=normalized,
        title=pr.text("title"),
        url=pr.text("html_url"),
        author=pr.obj("user").text("login"),
        head_branch=head.text("ref"),
        head_sha=head.text("sha"),
        head_repository=_repository(head_repo) if head_repo else None,
        from_fork=head_repo is None or head_repo.number("id") != base.obj("repo").number("id"),
        base_branch=base.text("ref"),
    )
