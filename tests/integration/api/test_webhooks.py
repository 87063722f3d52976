"""The webhook endpoint over the real API, database and Temporal server: signatures, redeliveries, which
pushes deploy, and the delivery log. Deliveries are the providers' real payloads with this test's repository
put in (tests/support/webhooks.py). No worker runs here: a started deployment stays QUEUED on its workflow;
tests/e2e/test_git_deploys.py builds and serves what pushes deploy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.db import Database
from core.models import Project, Service
from core.webhooks import Provider
from tests.support.api import api_settings, running_api
from tests.support.components import TemporalDevServer
from tests.support.webhooks import Delivery, pull_request_delivery, push_delivery, raw_delivery
from tests.unit.webhooks.support import body_of

REPO = "http://127.0.0.1:9/acme/shop.git"
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
PROVIDERS = list(Provider)


@pytest.fixture
async def api(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    # No worker polls this test's queue: a deploy is answered QUEUED once the wait for one runs out.
    monkeypatch.setattr("domain.temporal.ACCEPT_WAIT_SECONDS", 0.2)
    async with running_api(api_settings(database, tmp_path, temporal_server.address)) as client:
        yield client


@pytest.fixture
async def shop(api: httpx.AsyncClient, temporal_client: Client) -> AsyncIterator[dict[str, Any]]:
    """A project whose service `web` tracks `main` of REPO; answers ids, the webhook secret and URLs."""
    project = ok(await api.post("/v1/projects", json={"name": "shop"}), 201)
    service = ok(
        await api.post(
            f"/v1/projects/{project['id']}/services",
            json={"name": "web", "repo_url": REPO, "repo_branch": "main"},
        ),
        201,
    )
    webhook = ok(await api.get(f"/v1/projects/{project['id']}/webhook"))
    yield {"project": project, "service": service, **webhook}
    for deployment in ok(await api.get(f"/v1/services/{service['id']}/deployments")):
        handle = temporal_client.get_workflow_handle(
            f"service/{service['id']}/{deployment['environment_id']}"
        )
        try:
            await handle.terminate("test over")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def post(
    api: httpx.AsyncClient, shop: dict[str, Any], provider: Provider, delivery: Delivery
) -> httpx.Response:
    url = shop["urls"][provider.value].removeprefix("http://dockyard.test")
    # A provider does not send Dockyard's API token: the signature is the only credential.
    return await api.post(url, content=delivery.body, headers={**delivery.headers, "Authorization": ""})


async def deployments(api: httpx.AsyncClient, shop: dict[str, Any]) -> list[dict[str, Any]]:
    return ok(await api.get(f"/v1/services/{shop['service']['id']}/deployments"))  # type: ignore[no-any-return]


async def deliveries(api: httpx.AsyncClient, shop: dict[str, Any]) -> list[dict[str, Any]]:
    return ok(await api.get(f"/v1/projects/{shop['project']['id']}/webhook-deliveries"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_push_to_the_tracked_branch_deploys_exactly_that_commit(
    api: httpx.AsyncClient, shop: dict[str, Any], provider: Provider
) -> None:
    delivery = push_delivery(
        provider, shop["secret"], repo_url=REPO, branch="main", sha=SHA, message="Greet in French\n\nBody."
    )
    answer = ok(await post(api, shop, provider, delivery), 202)

    assert answer["verdict"] == "accepted"
    [deployment] = await deployments(api, shop)
    assert answer["deployment_ids"] == [deployment["id"]]
    assert deployment["status"] == "QUEUED"
    assert deployment["source"] == {"kind": "repo", "repo_url": REPO, "ref": SHA, "credential": False}
    assert (deployment["commit_sha"], deployment["commit_message"]) == (SHA, "Greet in French")
    assert deployment["commit_author"]
    [logged] = await deliveries(api, shop)
    assert (logged["provider"], logged["delivery_id"], logged["verdict"]) == (
        provider.value,
        delivery.delivery_id,
        "accepted",
    )
    assert logged["deployment_ids"] == [deployment["id"]]


FORGERIES = [
    pytest.param(provider, forgery, id=f"{provider.value}-{forgery}")
    for provider in PROVIDERS
    for forgery in ("wrong secret", "missing", "tampered body")
    # GitLab sends the secret itself as a token and signs nothing: a changed body cannot be told.
    if not (provider is Provider.GITLAB and forgery == "tampered body")
]


@pytest.mark.parametrize(("provider", "forgery"), FORGERIES)
async def test_a_delivery_without_the_right_signature_is_refused_and_starts_nothing(
    api: httpx.AsyncClient, shop: dict[str, Any], provider: Provider, forgery: str
) -> None:
    secret = "not the secret" if forgery == "wrong secret" else shop["secret"]
    delivery = push_delivery(provider, secret, repo_url=REPO, branch="main", sha=SHA)
    headers, body = dict(delivery.headers), delivery.body
    if forgery == "missing":
        for name in ("X-Hub-Signature-256", "X-Gitlab-Token", "X-Gitea-Signature", "X-Hub-Signature"):
            headers.pop(name, None)
    if forgery == "tampered body":
        body = body.replace(SHA.encode(), b"0" * 40)

    response = await post(api, shop, provider, Delivery(headers, body, delivery.delivery_id))

    assert response.status_code == 401, response.text
    assert response.json()["detail"]
    assert await deployments(api, shop) == []
    [logged] = await deliveries(api, shop)
    assert logged["verdict"] == "rejected" and logged["reason"] == response.json()["detail"]
    assert SHA not in str(logged)  # the attempt is logged, never its body
    # The refused delivery id stays free: the provider's correctly signed redelivery is processed.
    signed = push_delivery(
        provider, shop["secret"], repo_url=REPO, branch="main", sha=SHA, delivery_id=delivery.delivery_id
    )
    assert ok(await post(api, shop, provider, signed), 202)["verdict"] == "accepted"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_redelivery_never_deploys_twice(
    api: httpx.AsyncClient, shop: dict[str, Any], provider: Provider
) -> None:
    delivery = push_delivery(provider, shop["secret"], repo_url=REPO, branch="main", sha=SHA)
    first = ok(await post(api, shop, provider, delivery), 202)
    again = ok(await post(api, shop, provider, delivery), 200)

    assert again["verdict"] == "duplicate"
    assert again["deployment_ids"] == first["deployment_ids"]
    assert len(await deployments(api, shop)) == 1
    assert [d["verdict"] for d in await deliveries(api, shop)] == ["duplicate", "accepted"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_push_to_another_branch_is_accepted_and_ignored_with_the_reason(
    api: httpx.AsyncClient, shop: dict[str, Any], provider: Provider
) -> None:
    delivery = push_delivery(provider, shop["secret"], repo_url=REPO, branch="feature/login", sha=SHA)
    answer = ok(await post(api, shop, provider, delivery), 202)

    assert answer["verdict"] == "ignored"
    assert "push to branch feature/login; this service deploys main" in answer["reason"]
    assert await deployments(api, shop) == []
    assert (await deliveries(api, shop))[0]["reason"] == answer["reason"]


async def test_a_push_of_another_repository_deploys_nothing(
    api: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    delivery = push_delivery(
        Provider.GITHUB, shop["secret"], repo_url="http://127.0.0.1:9/acme/other.git", branch="main", sha=SHA
    )
    answer = ok(await post(api, shop, Provider.GITHUB, delivery), 202)
    assert answer["verdict"] == "ignored"
    assert "no service of this project tracks" in answer["reason"]


@pytest.mark.parametrize(
    ("changed", "deploys"),
    [
        pytest.param(["api/handlers.py"], True, id="watched"),
        pytest.param(["docs/index.md", "README.md"], False, id="not-watched"),
        pytest.param(["api/README.md"], False, id="negated"),
    ],
)
async def test_watch_patterns_decide_whether_a_push_deploys(
    api: httpx.AsyncClient, shop: dict[str, Any], database: Database, changed: list[str], deploys: bool
) -> None:
    async with database.transaction() as session:
        await session.execute(
            update(Service)
            .where(Service.id == shop["service"]["id"])
            .values(watch_patterns=["/api/**", "!**/*.md"])
        )
    delivery = push_delivery(
        Provider.GITHUB, shop["secret"], repo_url=REPO, branch="main", sha=SHA, changed=changed
    )
    answer = ok(await post(api, shop, Provider.GITHUB, delivery), 202)

    assert answer["verdict"] == ("accepted" if deploys else "ignored"), answer
    assert len(await deployments(api, shop)) == (1 if deploys else 0)
    if not deploys:
        assert "matches the watch patterns" in answer["reason"]


@pytest.mark.parametrize("provider", [Provider.GITHUB, Provider.GITLAB, Provider.BITBUCKET])
async def test_deleting_the_tracked_branch_deploys_nothing(
    api: httpx.AsyncClient, shop: dict[str, Any], provider: Provider
) -> None:
    delivery = push_delivery(provider, shop["secret"], repo_url=REPO, branch="main", sha=SHA, deleted=True)
    answer = ok(await post(api, shop, provider, delivery), 202)
    assert answer["verdict"] == "ignored"
    assert "branch main was deleted" in answer["reason"]
    assert await deployments(api, shop) == []


async def test_ping_answers_ok(api: httpx.AsyncClient, shop: dict[str, Any]) -> None:
    ping = raw_delivery(Provider.GITHUB, "ping", body_of("github/ping.json"), shop["secret"])
    assert ok(await post(api, shop, Provider.GITHUB, ping), 200)["verdict"] == "ping"


async def test_a_malformed_body_is_a_400_with_the_reason_and_logged(
    api: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    malformed = raw_delivery(Provider.GITHUB, "push", b'{"ref": "refs/heads/main", ', shop["secret"])
    response = await post(api, shop, Provider.GITHUB, malformed)
    assert response.status_code == 400, response.text
    assert "JSON" in response.json()["detail"]
    assert (await deliveries(api, shop))[0]["verdict"] == "invalid"


async def test_an_unknown_event_is_accepted_and_ignored(api: httpx.AsyncClient, shop: dict[str, Any]) -> None:
    issues = raw_delivery(Provider.GITHUB, "issues", b'{"action": "opened"}', shop["secret"])
    answer = ok(await post(api, shop, Provider.GITHUB, issues), 202)
    assert answer["verdict"] == "ignored" and "issues" in answer["reason"]


async def test_a_rotated_secret_refuses_the_old_one(api: httpx.AsyncClient, shop: dict[str, Any]) -> None:
    rotated = ok(await api.post(f"/v1/projects/{shop['project']['id']}/webhook/rotate"))
    assert rotated["secret"] != shop["secret"]
    old = push_delivery(Provider.GITHUB, shop["secret"], repo_url=REPO, branch="main", sha=SHA)
    assert (await post(api, shop, Provider.GITHUB, old)).status_code == 401
    new = push_delivery(Provider.GITHUB, rotated["secret"], repo_url=REPO, branch="main", sha=SHA)
    assert ok(await post(api, shop, Provider.GITHUB, new), 202)["verdict"] == "accepted"


async def test_unknown_project_is_a_404(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/webhooks/github/prj_missing", content=b"{}", headers={"X-GitHub-Event": "push"}
    )
    assert response.status_code == 404
    assert "prj_missing" in response.json()["detail"]


async def test_the_webhook_secret_is_stored_encrypted(
    api: httpx.AsyncClient, shop: dict[str, Any], database: Database
) -> None:
    async with database.session() as session:
        stored = await session.scalar(
            select(Project.webhook_secret).where(Project.id == shop["project"]["id"])
        )
    assert stored and shop["secret"] not in stored


async def test_pull_requests_without_previews_are_ignored(
    api: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    delivery = pull_request_delivery(
        Provider.GITHUB, "opened", shop["secret"], repo_url=REPO, number=7, head_branch="login", head_sha=SHA
    )
    answer = ok(await post(api, shop, Provider.GITHUB, delivery), 202)
    assert answer["verdict"] == "ignored" and "previews" in answer["reason"]
    assert await deployments(api, shop) == []


# --- pull-request previews ----------------------------------------------------------------------------------


async def enable_previews(api: httpx.AsyncClient, shop: dict[str, Any]) -> None:
    ok(await api.patch(f"/v1/projects/{shop['project']['id']}", json={"previews_enabled": True}))


async def environments(api: httpx.AsyncClient, shop: dict[str, Any]) -> dict[str, dict[str, Any]]:
    listed = ok(await api.get(f"/v1/projects/{shop['project']['id']}/environments"))
    return {e["name"]: e for e in listed}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_opened_pull_request_deploys_its_head_to_a_preview_environment(
    api: httpx.AsyncClient, shop: dict[str, Any], provider: Provider
) -> None:
    await enable_previews(api, shop)
    opened = pull_request_delivery(
        provider, "opened", shop["secret"], repo_url=REPO, number=7, head_branch="login", head_sha=SHA
    )
    answer = ok(await post(api, shop, provider, opened), 202)

    assert answer["verdict"] == "accepted", answer
    envs = await environments(api, shop)
    preview = envs["pr-7"]
    assert (preview["pull_request"], preview["base_environment_id"]) == (7, envs["production"]["id"])
    [deployment] = await deployments(api, shop)
    assert deployment["environment_id"] == preview["id"]
    assert deployment["source"]["ref"] == SHA[: len(deployment["source"]["ref"])]  # Bitbucket: 12 digits
    assert deployment["source"]["repo_url"] == REPO
    service = ok(await api.get(f"/v1/services/{shop['service']['id']}"))
    assert service["urls"]["pr-7"] == "http://web-pr-7.apps.test:18080"


async def test_an_updated_pull_request_redeploys_its_preview(
    api: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    await enable_previews(api, shop)
    for action, sha in (("opened", SHA), ("updated", "b" * 40)):
        delivery = pull_request_delivery(
            Provider.GITHUB,
            action,
            shop["secret"],
            repo_url=REPO,
            number=7,
            head_branch="login",
            head_sha=sha,
        )
        assert ok(await post(api, shop, Provider.GITHUB, delivery), 202)["verdict"] == "accepted"
    refs = [d["source"]["ref"] for d in await deployments(api, shop)]
    assert refs == ["b" * 40, SHA]  # newest first, both in pr-7
    assert len(await environments(api, shop)) == 2


async def test_a_closed_pull_request_starts_the_teardown_of_its_preview(
    api: httpx.AsyncClient, shop: dict[str, Any], temporal_client: Client
) -> None:
    await enable_previews(api, shop)
    opened = pull_request_delivery(
        Provider.GITHUB, "opened", shop["secret"], repo_url=REPO, number=7, head_branch="login", head_sha=SHA
    )
    ok(await post(api, shop, Provider.GITHUB, opened), 202)
    preview = (await environments(api, shop))["pr-7"]

    closed = pull_request_delivery(
        Provider.GITHUB, "closed", shop["secret"], repo_url=REPO, number=7, head_branch="login", head_sha=SHA
    )
    answer = ok(await post(api, shop, Provider.GITHUB, closed), 202)

    assert answer["verdict"] == "accepted"
    assert f"tearing down environment {preview['id']}" in answer["reason"]
    teardown = temporal_client.get_workflow_handle(f"teardown/{preview['id']}")
    try:
        description = await teardown.describe()
        assert description.workflow_type == "TeardownWorkflow"
    finally:
        await teardown.terminate("test over")  # no worker here: tests/e2e/test_previews.py runs one


async def test_pull_requests_of_a_branch_no_service_tracks_are_not_previewed(
    api: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    await enable_previews(api, shop)
    delivery = pull_request_delivery(
        Provider.GITHUB,
        "opened",
        shop["secret"],
        repo_url=REPO,
        number=8,
        head_branch="login",
        head_sha=SHA,
        base_branch="release",
    )
    answer = ok(await post(api, shop, Provider.GITHUB, delivery), 202)
    assert answer["verdict"] == "ignored" and "into release" in answer["reason"]
    assert "pr-8" not in await environments(api, shop)


async def test_closing_a_pull_request_without_a_preview_does_nothing(
    api: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    closed = pull_request_delivery(
        Provider.GITHUB, "merged", shop["secret"], repo_url=REPO, number=9, head_branch="login", head_sha=SHA
    )
    answer = ok(await post(api, shop, Provider.GITHUB, closed), 202)
    assert answer["verdict"] == "ignored" and "no preview to tear down" in answer["reason"]


async def test_unsigned_attempts_are_logged_up_to_a_bound(
    api: httpx.AsyncClient, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone can post to the endpoint: the log keeps only the newest refused attempts."""
    monkeypatch.setattr("api.routes.webhooks.KEEP_REJECTED", 3)
    accepted = push_delivery(Provider.GITHUB, shop["secret"], repo_url=REPO, branch="main", sha=SHA)
    ok(await post(api, shop, Provider.GITHUB, accepted), 202)
    for _ in range(5):
        forged = push_delivery(Provider.GITHUB, "guess", repo_url=REPO, branch="main", sha=SHA)
        assert (await post(api, shop, Provider.GITHUB, forged)).status_code == 401
    verdicts = [d["verdict"] for d in await deliveries(api, shop)]
    assert verdicts == ["rejected"] * 3 + ["accepted"]
