"""What a verified webhook delivery does to a project: which services deploy which commit.

The provider rules (signatures, payload shapes) are pure code in core/webhooks; this module
applies a delivery's events to the project's services and records the delivery.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import SourceSpec
from core.models import Environment, Project, Service, WebhookDelivery
from core.secrets import SecretBox
from core.settings import Settings
from core.webhooks import Commit, DeployCommit, PullRequest, PullRequestAction, Push, Repository, decide_push
from domain.deployments import CommitInfo, new_deployment, service_variables
from domain.hostnames import services_with_free_hostnames
from domain.store import environment_by_name
from domain.submissions import PendingDeployment
from workflows.teardown import TeardownRequest


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


def webhook_secret(project: Project, box: SecretBox) -> str:
    """The project's webhook secret, created on first use."""
    if project.webhook_secret is None:
        project.webhook_secret = box.encrypt(new_webhook_secret())
    return box.decrypt(project.webhook_secret)


def repository_key(url: str) -> str:
    """A repository URL reduced to host and path: scheme, credentials, case, `.git` and slashes
    do not make two URLs of one repository differ."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.port:
        host = f"{host}:{parts.port}"
    path = parts.path.strip("/").removesuffix(".git").lower()
    return f"{host}/{path}"


def same_repository(service_url: str | None, repository: Repository) -> bool:
    if not service_url:
        return False
    key = repository_key(service_url)
    return key in {repository_key(repository.clone_url), repository_key(repository.html_url)}


@dataclass
class Outcome:
    """What one delivery did: the deployments it started and, per service, why others did not."""

    deployments: list[PendingDeployment] = field(default_factory=list)
    teardowns: list[TeardownRequest] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # service name → reason
    notes: list[str] = field(default_factory=list)

    @property
    def deployment_ids(self) -> list[str]:
        return [pending.deployment.id for pending in self.deployments]

    def reason(self) -> str:
        parts = [f"deploying {len(self.deployments)} service(s)"] if self.deployments else []
        parts += [f"tearing down environment {t.environment_id}" for t in self.teardowns]
        parts += [f"{name}: {why}" for name, why in sorted(self.skipped.items())]
        return "; ".join(parts + self.notes) or "no service of this project tracks this repository"


async def apply_push(
    session: AsyncSession, settings: Settings, project: Project, push: Push, outcome: Outcome
) -> None:
    """Deploy the pushed commit to every service of the project that tracks the pushed branch of
    this repository in its production environment (the environment pushes deploy to)."""
    services = await _services_of(session, project, push.repository)
    if not services:
        outcome.notes.append(f"no service of this project tracks {push.repository.full_name}")
        return
    environment = await environment_by_name(session, project.id, "production")
    for service in services:
        decision = decide_push(push, service.repo_branch or "main", service.watch_patterns)
        if not isinstance(decision, DeployCommit):
            outcome.skipped[service.name] = decision.reason
            continue
        source = SourceSpec(
            kind="repo",
            repo_url=service.repo_url,
            ref=decision.sha,
            credential=service.repo_credential is not None,
        )
        commit = commit_info(decision.sha, decision.commit)
        variables = await service_variables(session, settings, service, environment)
        outcome.deployments.append(
            new_deployment(session, settings, service, environment, source, commit, variables)
        )


async def apply_pull_request(
    session: AsyncSession, settings: Settings, project: Project, pr: PullRequest, outcome: Outcome
) -> None:
    """A pull request's preview: opened, reopened or updated → environment `pr-<number>` (inheriting
    the project's preview base environment) deploys the head commit of every service that tracks
    the request's base branch of this repository; closed or merged → the environment is torn down."""
    name = preview_environment_name(pr.number)
    if pr.action in (PullRequestAction.CLOSED, PullRequestAction.MERGED):
        preview = await _environment(session, project, name)
        if preview is None or preview.pull_request != pr.number:
            outcome.notes.append(f"pull request #{pr.number} {pr.action}: no preview to tear down")
            return
        service_ids = await session.scalars(select(Service.id).where(Service.project_id == project.id))
        outcome.teardowns.append(TeardownRequest(environment_id=preview.id, service_ids=list(service_ids)))
        return
    if not project.previews_enabled:
        outcome.notes.append(
            f"pull request #{pr.number} {pr.action}: previews are not enabled for this project "
            f"(PATCH /v1/projects/{project.id} with previews_enabled)"
        )
        return
    if pr.from_fork:
        outcome.notes.append(f"pull request #{pr.number} comes from a fork: its code is not previewed")
        return
    services = [
        service
        for service in await _services_of(session, project, pr.repository)
        if service.previews and (service.repo_branch or "main") == pr.base_branch
    ]
    if not services:
        outcome.notes.append(
            f"pull request #{pr.number}: no service previews {pr.repository.full_name} into {pr.base_branch}"
        )
        return
    services, clashing = await services_with_free_hostnames(session, services, name, settings.apps_domain)
    outcome.skipped.update(clashing)
    if not services:
        return
    preview = await _environment(session, project, name)
    if preview is None:
        base = await environment_by_name(session, project.id, project.preview_base_environment)
        preview = Environment(
            project_id=project.id, name=name, pull_request=pr.number, base_environment_id=base.id
        )
        session.add(preview)
        await session.flush()
    for service in services:
        source = SourceSpec(
            kind="repo",
            repo_url=service.repo_url,
            ref=pr.head_sha,
            credential=service.repo_credential is not None,
        )
        commit = CommitInfo(sha=pr.head_sha, message=pr.title, author=pr.author)
        variables = await service_variables(session, settings, service, preview)
        outcome.deployments.append(
            new_deployment(session, settings, service, preview, source, commit, variables)
        )


def preview_environment_name(number: int) -> str:
    return f"pr-{number}"


async def _environment(session: AsyncSession, project: Project, name: str) -> Environment | None:
    return await session.scalar(
        select(Environment).where(Environment.project_id == project.id, Environment.name == name)
    )


def commit_info(sha: str, commit: Commit | None) -> CommitInfo:
    if commit is None:
        return CommitInfo(sha=sha)
    author = commit.author_name + (f" <{commit.author_email}>" if commit.author_email else "")
    return CommitInfo(sha=sha, message=commit.message, author=author)


async def _services_of(session: AsyncSession, project: Project, repository: Repository) -> list[Service]:
    services = await session.scalars(
        select(Service).where(Service.project_id == project.id, Service.repo_url.is_not(None))
    )
    return [service for service in services if same_repository(service.repo_url, repository)]


async def processed_delivery(
    session: AsyncSession, project: Project, provider: str, delivery_id: str | None
) -> WebhookDelivery | None:
    """The earlier delivery with this id that was processed, if any."""
    if delivery_id is None:
        return None
    return await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.project_id == project.id,
            WebhookDelivery.provider == provider,
            WebhookDelivery.dedupe_key == delivery_id,
        )
    )
