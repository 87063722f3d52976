"""What a webhook delivery means, the same shape for every provider (pydantic, frozen).

A delivery parses to a tuple of `WebhookEvent`s: one event for every provider except a Bitbucket push of
several refs, which becomes one `Push` per ref. The `kind` field tells the members apart (also in JSON).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Provider(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"  # also Forgejo, which sends Gitea's payloads and headers
    BITBUCKET = "bitbucket"  # Bitbucket Cloud


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Repository(_Event):
    full_name: str  # "owner/name" (GitLab: the namespace path, possibly with subgroups)
    clone_url: str  # https (or http, on a plain-http self-hosted server) clone URL
    html_url: str


class Commit(_Event):
    sha: str
    message: str
    author_name: str
    author_email: str | None  # None when the provider sends only a name (Bitbucket's "raw" without <email>)


class Ping(_Event):
    """The provider checks that the endpoint answers (GitHub `ping`, Bitbucket `diagnostics:ping`)."""

    kind: Literal["ping"] = "ping"
    event: str


class Push(_Event):
    """One ref moved. `after` is the exact commit to deploy; all zeros when the ref was deleted.

    `changed_paths` is the union of the files added, modified and removed by the pushed commits, or None when
    the payload cannot tell (no file lists, a truncated commit list, a new ref, a forced push): None means
    "anything may have changed". `forced` is None when the provider does not report it (GitLab, Gitea).
    """

    kind: Literal["push"] = "push"
    repository: Repository
    ref: str
    branch: str | None
    tag: str | None
    before: str
    after: str
    created: bool
    deleted: bool
    forced: bool | None
    head_commit: Commit | None
    changed_paths: frozenset[str] | None


class PullRequestAction(StrEnum):
    OPENED = "opened"
    REOPENED = "reopened"
    UPDATED = "updated"  # new commits on the head branch
    CLOSED = "closed"  # closed (declined) without merging
    MERGED = "merged"


class PullRequest(_Event):
    """A pull (merge) request that needs its preview environment created, redeployed or torn down.

    `head_sha` is the commit to deploy; Bitbucket abbreviates it to 12 hex digits: resolve it with git after
    fetching `head_branch`. `head_repository` is None when the payload does not describe it (a deleted fork).
    `author` is None when the payload does not name the request's author (GitLab names the acting user only).
    A `from_fork` request runs code from outside the repository: decide before deploying it.
    """

    kind: Literal["pull_request"] = "pull_request"
    repository: Repository
    number: int
    action: PullRequestAction
    title: str
    url: str
    author: str | None
    head_branch: str
    head_sha: str
    head_repository: Repository | None
    from_fork: bool
    base_branch: str


class Ignored(_Event):
    """A delivery that asks for nothing; `reason` says why, for the endpoint's answer and the logs."""

    kind: Literal["ignored"] = "ignored"
    event: str
    reason: str


WebhookEvent = Annotated[Ping | Push | PullRequest | Ignored, Field(discriminator="kind")]
