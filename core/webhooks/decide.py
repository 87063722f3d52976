"""Whether a push deploys a service: the tracked branch moved, to a commit that changes a watched file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.webhooks.events import Commit, Push
from core.webhooks.watch import matches_watch_patterns


class DeployCommit(BaseModel):
    """Deploy exactly `sha`, not the branch's tip at build time; `commit` is None if the payload omits it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["deploy"] = "deploy"
    branch: str
    sha: str
    commit: Commit | None


class Skip(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["skip"] = "skip"
    reason: str


def decide_push(push: Push, tracked_branch: str, watch_patterns: Sequence[str] = ()) -> DeployCommit | Skip:
    if push.tag is not None:
        return Skip(reason=f"tag {push.tag} {'deleted' if push.deleted else 'pushed'}: tags do not deploy")
    if push.branch is None:
        return Skip(reason=f"{push.ref} is not a branch")
    if push.branch != tracked_branch:
        return Skip(reason=f"push to branch {push.branch}; this service deploys {tracked_branch}")
    if push.deleted:
        return Skip(reason=f"branch {push.branch} was deleted: nothing to deploy")
    if not matches_watch_patterns(watch_patterns, push.changed_paths):
        changed = len(push.changed_paths or ())
        return Skip(reason=f"none of the {changed} changed files matches the watch patterns")
    return DeployCommit(branch=push.branch, sha=push.after, commit=push.head_commit)
