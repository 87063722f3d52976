"""GitLab webhooks (gitlab.com and self-managed).

Headers: `X-Gitlab-Event` names the hook, `X-Gitlab-Token` carries the shared secret in plain text (GitLab
does not sign bodies), `Idempotency-Key` (17.4+) stays the same across retries of one delivery; older GitLab
sends only `X-Gitlab-Event-UUID` (14.8+), one per event. `X-Gitlab-Webhook-UUID` names the webhook, not the
delivery, so it is never used as a delivery id.

| `X-Gitlab-Event` | becomes |
| --- | --- |
| `Push Hook`, `Tag Push Hook` | Push |
| `Merge Request Hook` | PullRequest: `open`, `reopen`, `update` with commits (`oldrev`), `close`, `merge` |
| anything else (including `System Hook`), other actions | Ignored |
"""

from __future__ import annotations

import hmac

from core.webhooks.common import (
    Fields,
    Headers,
    SignatureError,
    changed_paths,
    check_secret,
    commit_of,
    first_header,
    header,
    is_zero,
    ref_names,
    require_header,
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

EVENT = "X-Gitlab-Event"
TOKEN = "X-Gitlab-Token"
DELIVERY = ("Idempotency-Key", "X-Gitlab-Event-UUID")

_ACTIONS = {
    "open": PullRequestAction.OPENED,
    "reopen": PullRequestAction.REOPENED,
    "update": PullRequestAction.UPDATED,
    "close": PullRequestAction.CLOSED,
    "merge": PullRequestAction.MERGED,
}


def verify(headers: Headers, body: bytes, secret: str) -> None:
    check_secret(secret)
    token = header(headers, TOKEN)
    if not token:
        raise SignatureError(f"missing {TOKEN} header: set the secret token on the GitLab webhook")
    if not hmac.compare_digest(token.encode(), secret.encode()):
        raise SignatureError(f"signature does not match: {TOKEN} is not this webhook's secret")


def delivery_id(headers: Headers) -> str | None:
    return first_header(headers, *DELIVERY)


def parse(headers: Headers, body: bytes) -> tuple[WebhookEvent, ...]:
    event = require_header(headers, EVENT)
    payload = Fields.decode(body)
    if event in ("Push Hook", "Tag Push Hook"):
        return (_push(payload),)
    if event == "Merge Request Hook":
        return (_merge_request(payload),)
    return (Ignored(event=event, reason=f"{event} events are not handled"),)


def _repository(project: Fields) -> Repository:
    return Repository(
        full_name=project.text("path_with_namespace"),
        clone_url=project.text("git_http_url"),
        html_url=project.text("web_url"),
    )


def _push(payload: Fields) -> Push:
    """GitLab lists at most 20 commits (the newest) and says how many were pushed in `total_commits_count`."""
    ref = payload.text("ref")
    branch, tag = ref_names(ref)
    before, after = payload.text("before"), payload.text("after")
    created, deleted = is_zero(before), is_zero(after)
    commits = payload.objs("commits")
    complete = not (created or deleted) and payload.number("total_commits_count") == len(commits)
    return Push(
        repository=_repository(payload.obj("project")),
        ref=ref,
        branch=branch,
        tag=tag,
        before=before,
        after=after,
        created=created,
        deleted=deleted,
        forced=None,
        head_commit=_head_commit(commits, after),
        changed_paths=changed_paths(commits) if complete else None,
    )


def _head_commit(commits: list[Fields], sha: str) -> Commit | None:
    return next((commit_of(commit) for commit in commits if commit.text("id") == sha), None)


def _merge_request(payload: Fields) -> WebhookEvent:
    attributes = payload.obj("object_attributes")
    action = attributes.text("action")
    if action not in _ACTIONS:
        return Ignored(event="Merge Request Hook", reason=f"merge request action {action!r} is not handled")
    if action == "update" and not attributes.has("oldrev"):
        return Ignored(
            event="Merge Request Hook",
            reason="merge request updated without new commits (no oldrev): nothing to redeploy",
        )
    user = payload.obj("user")
    source = attributes.opt_obj("source")  # null when the source project was deleted
    return PullRequest(
        repository=_repository(payload.obj("project")),
        number=attributes.number("iid"),
        action=_ACTIONS[action],
        title=attributes.text("title"),
        url=attributes.text("url"),
        # `user` is whoever acted; GitLab names the author by id only.
        author=user.text("username") if user.number("id") == attributes.number("author_id") else None,
        head_branch=attributes.text("source_branch"),
        head_sha=attributes.obj("last_commit").text("id"),
        head_repository=_repository(source) if source else None,
        from_fork=attributes.number("source_project_id") != attributes.number("target_project_id"),
        base_branch=attributes.text("target_branch"),
    )
