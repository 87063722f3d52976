"""Webhook deliveries for tests: the providers' real payloads (tests/unit/webhooks/fixtures) with a test
repository's URL, branch and commit put in their place, signed the way each provider signs.

The substitution is textual over the payload's strings: every URL of the payload's repository becomes the test
repository's, the payload's head commit sha becomes the test commit's, and so on, so the rest of each real
payload stays as the provider sent it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from core.webhooks import Provider, PullRequest, Push, parse_events
from tests.unit.webhooks.support import body_of, signed_headers

EVENT_HEADER = {
    Provider.GITHUB: "X-GitHub-Event",
    Provider.GITLAB: "X-Gitlab-Event",
    Provider.GITEA: "X-Gitea-Event",
    Provider.BITBUCKET: "X-Event-Key",
}
DELIVERY_HEADER = {
    Provider.GITHUB: "X-GitHub-Delivery",
    Provider.GITLAB: "X-Gitlab-Event-UUID",
    Provider.GITEA: "X-Gitea-Delivery",
    Provider.BITBUCKET: "X-Request-UUID",
}
PUSH = {
    Provider.GITHUB: ("github/push.json", "push"),
    Provider.GITLAB: ("gitlab/push.json", "Push Hook"),
    Provider.GITEA: ("gitea/push.json", "push"),
    Provider.BITBUCKET: ("bitbucket/repo_push.json", "repo:push"),
}
BRANCH_DELETED = {
    Provider.GITHUB: "github/push.branch-deleted.json",
    Provider.GITLAB: "gitlab/push.branch-deleted.json",
    Provider.BITBUCKET: "bitbucket/repo_push.branch-deleted.json",
}
PULL_REQUEST = {
    (Provider.GITHUB, "opened"): ("github/pull_request.opened.json", "pull_request"),
    (Provider.GITHUB, "updated"): ("github/pull_request.synchronize.json", "pull_request"),
    (Provider.GITHUB, "closed"): ("github/pull_request.closed.unmerged.json", "pull_request"),
    (Provider.GITHUB, "merged"): ("github/pull_request.closed.merged.json", "pull_request"),
    (Provider.GITLAB, "opened"): ("gitlab/merge_request.open.json", "Merge Request Hook"),
    (Provider.GITLAB, "updated"): ("gitlab/merge_request.update.json", "Merge Request Hook"),
    (Provider.GITLAB, "closed"): ("gitlab/merge_request.close.json", "Merge Request Hook"),
    (Provider.GITEA, "opened"): ("gitea/pull_request.opened.json", "pull_request"),
    (Provider.GITEA, "updated"): ("gitea/pull_request.synchronized.json", "pull_request"),
    (Provider.GITEA, "closed"): ("gitea/pull_request.closed.json", "pull_request"),
    (Provider.BITBUCKET, "opened"): ("bitbucket/pullrequest_created.json", "pullrequest:created"),
    (Provider.BITBUCKET, "merged"): ("bitbucket/pullrequest_fulfilled.json", "pullrequest:fulfilled"),
}


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    delivery_id: str


def push_delivery(
    provider: Provider,
    secret: str,
    *,
    repo_url: str,
    branch: str,
    sha: str,
    message: str = "Change the greeting",
    changed: list[str] | None = None,
    deleted: bool = False,
    delivery_id: str | None = None,
) -> Delivery:
    """A push of `sha` to `branch` of the repository at `repo_url` (or, `deleted`, the branch's deletion);
    `changed` replaces every listed commit's files (as modified) where the provider lists files."""
    fixture, event = PUSH[provider]
    if deleted:
        fixture = BRANCH_DELETED[provider]
    original = _original(provider, fixture, event)
    assert isinstance(original, Push) and original.branch
    payload = json.loads(body_of(fixture))
    repository = original.repository
    payload = _replace(payload, _repository_swaps(repository.html_url, repository.clone_url, repo_url))
    if original.head_commit is not None:
        payload = _replace(payload, {original.after: sha, original.head_commit.message: message})
    payload = _replace_ref(payload, original.branch, branch)
    if changed is not None:
        for commit in payload.get("commits") or []:
            commit.update(added=[], removed=[], modified=changed)
    return _deliver(provider, event, payload, secret, delivery_id)


def pull_request_delivery(
    provider: Provider,
    action: str,
    secret: str,
    *,
    repo_url: str,
    number: int,
    head_branch: str,
    head_sha: str,
    base_branch: str = "main",
    delivery_id: str | None = None,
) -> Delivery:
    fixture, event = PULL_REQUEST[(provider, action)]
    original = _original(provider, fixture, event)
    assert isinstance(original, PullRequest)
    payload = json.loads(body_of(fixture))
    swaps = _repository_swaps(original.repository.html_url, original.repository.clone_url, repo_url)
    if original.head_repository is not None:
        swaps |= _repository_swaps(
            original.head_repository.html_url, original.head_repository.clone_url, repo_url
        )
    payload = _replace(payload, swaps)
    payload = _replace(payload, {original.head_sha: head_sha})
    payload = _replace_number(payload, original.number, number)
    _same_repository_branches(provider, payload, head_branch, base_branch)
    return _deliver(provider, event, payload, secret, delivery_id)


def raw_delivery(
    provider: Provider, event: str, body: bytes, secret: str, delivery_id: str | None = None
) -> Delivery:
    """`body` as it is (malformed, a ping, an unhandled event), signed."""
    key = delivery_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER[provider]: event,
        DELIVERY_HEADER[provider]: key,
        **signed_headers(provider, body, secret),
    }
    return Delivery(headers=headers, body=body, delivery_id=key)


def _same_repository_branches(provider: Provider, payload: Any, head_branch: str, base_branch: str) -> None:
    """Make the request one from `head_branch` to `base_branch` of the repository itself (some saved
    payloads come from forks, whose code Dockyard does not preview)."""
    match provider:
        case Provider.GITHUB | Provider.GITEA:
            pr = payload["pull_request"]
            pr["head"]["ref"], pr["base"]["ref"] = head_branch, base_branch
            if provider is Provider.GITEA:
                pr["head"]["repo_id"] = pr["base"]["repo_id"]
            elif pr["head"].get("repo"):
                pr["head"]["repo"]["id"] = pr["base"]["repo"]["id"]
        case Provider.GITLAB:
            attributes = payload["object_attributes"]
            attributes["source_branch"], attributes["target_branch"] = head_branch, base_branch
            attributes["source_project_id"] = attributes["target_project_id"]
        case Provider.BITBUCKET:
            source, destination = payload["pullrequest"]["source"], payload["pullrequest"]["destination"]
            source["branch"]["name"], destination["branch"]["name"] = head_branch, base_branch
            if source.get("repository"):
                source["repository"]["full_name"] = destination["repository"]["full_name"]


def _original(provider: Provider, fixture: str, event: str) -> Any:
    [parsed] = parse_events(provider, {EVENT_HEADER[provider]: event}, body_of(fixture))
    return parsed


def _repository_swaps(html_url: str, clone_url: str, repo_url: str) -> dict[str, str]:
    """Longest first: the clone URL (…/name.git) before the web URL it starts with."""
    web = repo_url.removesuffix(".git")
    return {clone_url: repo_url, html_url: web}


def _deliver(provider: Provider, event: str, payload: Any, secret: str, delivery_id: str | None) -> Delivery:
    return raw_delivery(provider, event, json.dumps(payload).encode(), secret, delivery_id)


def _replace(node: Any, swaps: dict[str, str]) -> Any:
    """Every string with each `old` substring replaced by its `new`, longest `old` first."""
    ordered = sorted(((old, new) for old, new in swaps.items() if old), key=lambda item: -len(item[0]))

    def text(value: str) -> str:
        for old, new in ordered:
            value = value.replace(old, new)
        return value

    return _map_strings(node, text)


def _replace_exact(node: Any, swaps: dict[str, str]) -> Any:
    return _map_strings(node, lambda value: swaps.get(value, value))


def _replace_ref(node: Any, old_branch: str, new_branch: str) -> Any:
    swaps = {old_branch: new_branch, f"refs/heads/{old_branch}": f"refs/heads/{new_branch}"}
    return _replace_exact(node, swaps)


def _replace_number(node: Any, old: int, new: int) -> Any:
    if isinstance(node, dict):
        return {
            k: new if k in ("number", "iid", "id", "index") and v == old else _replace_number(v, old, new)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_replace_number(v, old, new) for v in node]
    return node


def _map_strings(node: Any, change: Any) -> Any:
    if isinstance(node, dict):
        return {key: _map_strings(value, change) for key, value in node.items()}
    if isinstance(node, list):
        return [_map_strings(value, change) for value in node]
    if isinstance(node, str):
        return change(node)
    return node
