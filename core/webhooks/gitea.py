"""Gitea and Forgejo webhooks (Forgejo sends Gitea's payloads and headers, plus its own `X-Forgejo-*` copies).

Headers: `X-Gitea-Event` names the event family (`pull_request` covers opened, synchronized, closed…),
`X-Gitea-Delivery` is a UUID per delivery, `X-Gitea-Signature` is the hex HMAC-SHA256 of the raw body with no
prefix (sent empty when the webhook has no secret). Each falls back to its `X-Forgejo-*` twin.

| `X-Gitea-Event` | becomes |
| --- | --- |
| `push` | Push (forced pushes are not reported: `forced` is None) |
| `pull_request` | PullRequest: `opened`, `reopened`, `synchronized` (→ updated), `closed` (→ merged/closed) |
| anything else (`create`, `delete`, …), other actions | Ignored |
"""

from __future__ import annotations

from core.webhooks.common import (
    Fields,
    Headers,
    PayloadError,
    changed_paths,
    check_hmac_sha256,
    commit_of,
    first_header,
    header,
    is_zero,
    ref_names,
)
from core.webhooks.events import (
    Commit,
    Ignored,
    PullRequest,
    PullRequestAction,
    Push,
    Repository,
    WebhookEvent,
)

EVENT = ("X-Gitea-Event", "X-Forgejo-Event")
DELIVERY = ("X-Gitea-Delivery", "X-Forgejo-Delivery")
SIGNATURE = ("X-Gitea-Signature", "X-Forgejo-Signature")

_ACTIONS = {
    "opened": PullRequestAction.OPENED,
    "reopened": PullRequestAction.REOPENED,
    "synchronized": PullRequestAction.UPDATED,
}
_REASONS = {
    "create": "create events are not handled: a new branch also arrives as a push event",
    "delete": "delete events are not handled: a deleted branch or tag has nothing to deploy",
}


def verify(headers: Headers, body: bytes, secret: str) -> None:
    name = next((name for name in SIGNATURE if header(headers, name) is not None), SIGNATURE[0])
    check_hmac_sha256(name, header(headers, name), body, secret)


def delivery_id(headers: Headers) -> str | None:
    return first_header(headers, *DELIVERY)


def parse(headers: Headers, body: bytes) -> tuple[WebhookEvent, ...]:
    event = first_header(headers, *EVENT)
    if event is None:
        raise PayloadError(f"missing {EVENT[0]} header")
    payload = Fields.decode(body)
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
    """Gitea lists at most `[ui] FEED_MAX_COMMIT_NUM` commits (5 by default) and, since 1.18, the number
    pushed in `total_commits`; without that number the list may be cut short."""
    ref = payload.text("ref")
    branch, tag = ref_names(ref)
    before, after = payload.text("before"), payload.text("after")
    created, deleted = is_zero(before), is_zero(after)
    commits = payload.objs("commits")
    total = payload.number("total_commits") if payload.has("total_commits") else None
    complete = not (created or deleted) and total == len(commits)
    return Push(
        repository=_repository(payload.obj("repository")),
        ref=ref,
        branch=branch,
        tag=tag,
        before=before,
        after=after,
        created=created,
        deleted=deleted,
        forced=None,
        head_commit=_head_commit(payload, commits, after),
        changed_paths=changed_paths(commits) if complete else None,
    )


def _head_commit(payload: Fields, commits: list[Fields], sha: str) -> Commit | None:
    head = payload.opt_obj("head_commit")  # absent before Gitea 1.17
    if head is not None:
        return commit_of(head)
    return next((commit_of(commit) for commit in commits if commit.text("id") == sha), None)


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
    repository = _repository(payload.obj("repository"))
    from_fork = head.number("repo_id") != base.number("repo_id")
    head_repo = head.opt_obj("repo")  # some deliveries leave it out; the ids still tell a fork apart
    return PullRequest(
        repository=repository,
        number=pr.number("number"),
        action=normalized,
        title=pr.text("title"),
        url=pr.text("html_url"),
        author=pr.obj("user").text("login"),
        head_branch=head.text("ref"),
        head_sha=head.text("sha"),
        head_repository=_repository(head_repo) if head_repo else (None if from_fork else repository),
        from_fork=from_fork,
        base_branch=base.text("ref"),
    )
