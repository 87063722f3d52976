"""Git-push deploys, end to end: a push to a loopback git server (tests/support/git_server.py), the
provider's delivery (its real payload with this repository, branch and commit put in, signed with the
project's secret: tests/support/webhooks.py) posted to the platform's webhook endpoint, and the pushed
commit built, released and answering through Traefik.

Every test shares one platform (`dockyard up`) and one small app, the static sample (Caddy serving
index.html): after the first build only the `COPY . ./` layer changes, so a deploy takes seconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import httpx
import pytest

from core.webhooks import Provider
from tests.support.git_server import GitServer, WorkingCopy
from tests.support.platform import FINAL, Platform
from tests.support.webhooks import Delivery, push_delivery

pytestmark = pytest.mark.timeout(600)

STATIC_APP = Path(__file__).resolve().parents[1] / "fixtures" / "apps" / "static" / "index.html"
SAMPLE_LINE = "static sample: index.html served by Caddy"
BUILD_SECONDS = 300  # the first build installs Caddy from Debian; later ones reuse that layer
AUTHOR = ("Ada Lovelace", "ada@dockyard.invalid")
# Dockyard sends a repository token as HTTP Basic with the user name its host expects (activities/git.py,
# basic_auth_user: x-access-token for a host like this one); the test repository is private to that pair.
TOKEN_USER = "x-access-token"
TOKEN = "ghs_dockyardTestToken0123456789"
# A build step that outlasts any test: a deploy still in it can only end by being superseded.
SLOW_BUILD = '[phases.build]\ncmds = ["echo slow build at $((6 * 7)) && sleep 300"]\n'
SLOW_BUILD_STARTED = "slow build at 42"  # printed by the step itself, not by the Dockerfile's echo


# --- helpers ---------------------------------------------------------------------------------------------


@dataclass
class Site:
    """A project whose service tracks `branch` of a repository on the git server, with a working copy."""

    project: dict[str, Any]
    service: dict[str, Any]
    webhook: dict[str, Any]  # secret and endpoint URLs, from GET /v1/projects/{id}/webhook
    repo_url: str
    work: WorkingCopy

    def push(self, text: str, message: str, branch: str = "main", **files: str) -> str:
        """Commit a version of the app whose page says `text` (plus `files`), push it; answer the sha."""
        self.work.write({"index.html": page(text), **files})
        sha = self.work.commit(message)
        self.work.push(branch)
        return sha

    def deliver(self, provider: Provider, branch: str, sha: str, message: str) -> tuple[Delivery, Any]:
        """The provider's push delivery, posted as the provider posts it; answers it and the reply."""
        delivery = push_delivery(
            provider, self.webhook["secret"], repo_url=self.repo_url, branch=branch, sha=sha, message=message
        )
        # A provider sends no Dockyard API token: the signature is the only credential.
        response = httpx.post(
            self.webhook["urls"][provider.value], content=delivery.body, headers=delivery.headers, timeout=30
        )
        assert response.status_code in (200, 202), f"{response.status_code}: {response.text}"
        return delivery, response.json()


def page(text: str) -> str:
    return STATIC_APP.read_text().replace(SAMPLE_LINE, text)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json()


def create_site(
    platform: Platform,
    git_server: GitServer,
    tmp_path: Path,
    name: str,
    credentials: tuple[str, str] | None = None,
    **fields: Any,
) -> Site:
    """A repository (private with `credentials`) and a project with one service tracking its `main`."""
    unique = f"{name}-{uuid.uuid4().hex[:6]}"
    repo_url = git_server.create_repo(f"acme/{unique}", credentials=credentials)
    work = WorkingCopy(tmp_path / unique, git_server.url(f"acme/{unique}", credentials), *AUTHOR)
    project = ok(platform.api.post("/v1/projects", json={"name": unique}), 201)
    service = add_service(platform, project, "web", repo_url, **fields)
    webhook = ok(platform.api.get(f"/v1/projects/{project['id']}/webhook"))
    return Site(project=project, service=service, webhook=webhook, repo_url=repo_url, work=work)


def add_service(
    platform: Platform, project: dict[str, Any], name: str, repo_url: str, **fields: Any
) -> dict[str, Any]:
    body = {"name": name, "repo_url": repo_url, "repo_branch": "main", **fields}
    service = ok(platform.api.post(f"/v1/projects/{project['id']}/services", json=body), 201)
    platform.service_ids.append(service["id"])
    return service  # type: ignore[no-any-return]


def deployments(platform: Platform, service: dict[str, Any]) -> list[dict[str, Any]]:
    return ok(platform.api.get(f"/v1/services/{service['id']}/deployments"))  # type: ignore[no-any-return]


def deliveries(platform: Platform, site: Site) -> list[dict[str, Any]]:
    return ok(platform.api.get(f"/v1/projects/{site.project['id']}/webhook-deliveries"))  # type: ignore[no-any-return]


def served(platform: Platform, service: dict[str, Any]) -> str:
    response = platform.get(service)
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.text


def containers_of(client: docker.DockerClient, deployment_id: str) -> list[str]:
    """Names from the list answer alone (sparse): a container removed meanwhile is no error."""
    listed = client.containers.list(
        all=True, sparse=True, filters={"label": f"dockyard.deployment={deployment_id}"}
    )
    return [c.attrs["Names"][0].lstrip("/") for c in listed]


def wait_for_build_line(platform: Platform, deployment_id: str, text: str, timeout: float) -> None:
    """Until the live build log of `deployment_id` has a line containing `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = ok(platform.api.get(f"/v1/deployments/{deployment_id}/build-logs"))["lines"]
        if any(text in line for line in lines):
            return
        deployment = ok(platform.api.get(f"/v1/deployments/{deployment_id}"))
        assert deployment["status"] not in FINAL, deployment
        time.sleep(0.2)
    pytest.fail(f"{text!r} not in the build log of {deployment_id} after {timeout:g}s")


@pytest.fixture(scope="module")
def git_server() -> Iterator[GitServer]:
    with GitServer() as server:
        yield server


# --- a push deploys exactly the pushed commit ------------------------------------------------------------


@pytest.mark.parametrize("provider", list(Provider), ids=lambda p: p.value)
def test_a_push_to_the_tracked_branch_deploys_and_serves_exactly_that_commit(
    platform: Platform, git_server: GitServer, tmp_path: Path, provider: Provider
) -> None:
    site = create_site(platform, git_server, tmp_path, f"push-{provider.value}")
    text = f"pushed through {provider.value}"
    sha = site.push(text, f"Greet through {provider.value}\n\nThe body is not the subject.")
    # The branch moves on before the delivery is processed: the delivered commit is what deploys.
    site.push("a later commit nobody delivered", "Later")

    delivery, answer = site.deliver(provider, "main", sha, f"Greet through {provider.value}")

    assert answer["verdict"] == "accepted" and "errors" not in answer, answer
    [deployment_id] = answer["deployment_ids"]
    deployment = platform.wait_final(deployment_id, BUILD_SECONDS)
    assert deployment["status"] == "ACTIVE", deployment
    source = deployment["source"]
    assert source == {"kind": "repo", "repo_url": site.repo_url, "ref": sha, "credential": False}
    # As the built commit has them in git (the payload's author is the provider's sample user).
    assert (deployment["commit_sha"], deployment["commit_message"], deployment["commit_author"]) == (
        sha,
        f"Greet through {provider.value}",
        f"{AUTHOR[0]} <{AUTHOR[1]}>",
    )
    assert text in served(platform, site.service)
    [logged] = deliveries(platform, site)
    assert (logged["provider"], logged["delivery_id"], logged["verdict"]) == (
        provider.value,
        delivery.delivery_id,
        "accepted",
    )
    assert logged["deployment_ids"] == [deployment_id]


# --- a newer push supersedes one still building ----------------------------------------------------------


def test_a_push_while_the_previous_one_builds_supersedes_it_and_serves_the_newer_commit(
    platform: Platform, git_server: GitServer, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    site = create_site(platform, git_server, tmp_path, "supersede")
    sha_a = site.push("version A", "A: slow to build", **{"nixpacks.toml": SLOW_BUILD})
    _, answer_a = site.deliver(Provider.GITHUB, "main", sha_a, "A: slow to build")
    [a] = answer_a["deployment_ids"]
    wait_for_build_line(platform, a, SLOW_BUILD_STARTED, BUILD_SECONDS)

    (site.work.path / "nixpacks.toml").unlink()
    sha_b = site.push("version B", "B: quick")
    _, answer_b = site.deliver(Provider.GITHUB, "main", sha_b, "B: quick")
    [b] = answer_b["deployment_ids"]

    # Well before A's build step could end on its own: B does not wait behind it.
    newer = platform.wait_final(b, 120)
    assert newer["status"] == "ACTIVE", newer
    assert newer["commit_sha"] == sha_b
    assert "version B" in served(platform, site.service)
    older = platform.wait_final(a, 30)
    assert older["status"] == "SUPERSEDED", older
    assert older["message"] == "superseded by a newer deployment", older
    assert older["image_digest"] is None
    assert {d["id"]: d["status"] for d in deployments(platform, site.service)} == {
        a: "SUPERSEDED",
        b: "ACTIVE",
    }
    assert containers_of(docker_client, a) == []


# --- private repositories --------------------------------------------------------------------------------


def test_a_private_repository_builds_with_the_services_token_and_fails_without_one(
    platform: Platform, git_server: GitServer, tmp_path: Path
) -> None:
    site = create_site(platform, git_server, tmp_path, "private", (TOKEN_USER, TOKEN), repo_token=TOKEN)
    anonymous = add_service(platform, site.project, "anonymous", site.repo_url)
    assert (site.service["has_repo_credential"], anonymous["has_repo_credential"]) == (True, False)
    sha = site.push("private code", "Private")

    _, answer = site.deliver(Provider.GITHUB, "main", sha, "Private")

    # One push, two services tracking the repository: one deployment each.
    assert answer["verdict"] == "accepted", answer
    assert len(answer["deployment_ids"]) == 2
    [with_token] = deployments(platform, site.service)
    [without] = deployments(platform, anonymous)
    assert sorted(answer["deployment_ids"]) == sorted([with_token["id"], without["id"]])

    built = platform.wait_final(with_token["id"], BUILD_SECONDS)
    assert built["status"] == "ACTIVE", built
    assert built["source"]["credential"] is True and built["commit_sha"] == sha
    assert "private code" in served(platform, site.service)

    failed = platform.wait_final(without["id"], BUILD_SECONDS)
    assert failed["status"] == "FAILED", failed
    assert failed["failed_step"] == "build"
    # git's own words: it was refused and, never prompting, had no user name to offer.
    assert failed["message"].startswith("git clone failed: "), failed
    assert "could not read Username" in failed["message"], failed
    assert failed["image_digest"] is None
    assert platform.get(anonymous).status_code == 404  # nothing was ever routed
    repository = urlsplit(site.repo_url).path
    assert any(path.startswith(repository) and status == 401 for _, path, status in git_server.requests)


# --- a commit the repository does not have ---------------------------------------------------------------


def test_a_push_of_an_unknown_commit_fails_with_gits_error_and_the_previous_version_keeps_serving(
    platform: Platform, git_server: GitServer, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    site = create_site(platform, git_server, tmp_path, "unknown-commit")
    sha = site.push("the good version", "Good")
    _, answer = site.deliver(Provider.GITHUB, "main", sha, "Good")
    [good] = answer["deployment_ids"]
    assert platform.wait_final(good, BUILD_SECONDS)["status"] == "ACTIVE"

    made_up = uuid.uuid4().hex + "0" * 8
    _, answer = site.deliver(Provider.GITHUB, "main", made_up, "A commit nobody pushed")

    assert answer["verdict"] == "accepted", answer
    [bad] = answer["deployment_ids"]
    failed = platform.wait_final(bad, BUILD_SECONDS)
    assert failed["status"] == "FAILED", failed
    assert failed["failed_step"] == "build"
    assert f"git checkout failed: fatal: reference is not a tree: {made_up}" in failed["message"], failed
    assert failed["image_digest"] is None
    assert "the good version" in served(platform, site.service)
    assert {d["id"]: d["status"] for d in deployments(platform, site.service)} == {
        good: "ACTIVE",
        bad: "FAILED",
    }
    assert containers_of(docker_client, bad) == []
    assert len(containers_of(docker_client, good)) == 1


# --- other branches --------------------------------------------------------------------------------------


def test_a_push_to_another_branch_is_ignored_and_deploys_nothing(
    platform: Platform, git_server: GitServer, tmp_path: Path
) -> None:
    site = create_site(platform, git_server, tmp_path, "other-branch")
    site.push("main", "On main")
    site.work.branch("feature/login")
    sha = site.push("a feature", "On a feature branch", branch="feature/login")

    delivery, answer = site.deliver(Provider.GITHUB, "feature/login", sha, "On a feature branch")

    assert answer["verdict"] == "ignored", answer
    assert "push to branch feature/login; this service deploys main" in answer["reason"], answer
    assert answer["deployment_ids"] == []
    assert deployments(platform, site.service) == []
    [logged] = deliveries(platform, site)
    assert (logged["delivery_id"], logged["verdict"], logged["deployment_ids"]) == (
        delivery.delivery_id,
        "ignored",
        [],
    )
    assert platform.get(site.service).status_code == 404
