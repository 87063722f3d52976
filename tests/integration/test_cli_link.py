"""`dockyard init`, `link`, `unlink`, `status` and `deploy` through a link, against the real API served
on loopback (both database backends), run with typer's CliRunner."""

from __future__ import annotations

import io
import json
import tarfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from cli.deploy import pack
from cli.link import valid_name
from cli.main import app
from cli.platform import SECRET_NAMES
from core.codec import new_payload_key
from core.db import Database
from core.settings import Settings
from tests.support.api import SECRET_KEY, TOKEN, api_settings
from tests.support.components import TemporalDevServer
from tests.support.registry import free_port
from tests.support.served_api import served_api


@dataclass
class Served:
    url: str
    api: httpx.Client  # the test's own view of the API, with the token

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.api.request(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json()


@contextmanager
def serving(settings: Settings) -> Iterator[Served]:
    """The API app over HTTP on a loopback port, in a process of its own (tests/support/served_api.py)."""
    with (
        served_api(settings, settings.state_dir / "api.log") as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as api,
    ):
        yield Served(url, api)


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    """Temporal is down: deploys are recorded, then fail at submit (503)."""
    with serving(api_settings(database, tmp_path, f"127.0.0.1:{free_port()}")) as running:
        yield running


@pytest.fixture
def served_with_temporal(
    database: Database, tmp_path: Path, temporal_server: TemporalDevServer
) -> Iterator[Served]:
    """A real Temporal, no worker on the task queue: deploys are accepted and stay QUEUED."""
    with serving(api_settings(database, tmp_path, temporal_server.address)) as running:
        yield running


def cli_env(served: Served, tmp_path: Path, **overrides: str) -> dict[str, str]:
    # Every secret `dockyard` would otherwise generate and export (cli/platform.py's SECRET_NAMES):
    # CliRunner restores exactly the variables it was given, so none leaks into this process.
    generated = {name: f"{name.lower()}-test" for name in SECRET_NAMES}
    return (
        generated
        | {
            "DOCKYARD_STATE_DIR": str(tmp_path / "cli-state"),
            "DOCKYARD_PUBLIC_API_URL": served.url,
            "DOCKYARD_API_TOKEN": TOKEN,
            "DOCKYARD_SECRET_KEY": SECRET_KEY,
            "DOCKYARD_PAYLOAD_KEY": new_payload_key(),
        }
        | overrides
    )


@pytest.fixture
def env(served: Served, tmp_path: Path) -> dict[str, str]:
    return cli_env(served, tmp_path)


def dockyard(env: dict[str, str], *args: str, exit_code: int = 0) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("".join(traceback.format_exception(*result.exc_info)))  # type: ignore[misc]
    assert result.exit_code == exit_code, result.output
    return result


def directory(parent: Path, name: str, files: dict[str, str] | None = None) -> Path:
    root = parent / name
    for relative, text in (files or {"index.html": "<h1>hi</h1>"}).items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def link_of(root: Path) -> dict[str, Any]:
    return json.loads((root / ".dockyard" / "link.json").read_text())  # type: ignore[no-any-return]


def new_service(served: Served, project: str = "shop", service: str = "web") -> tuple[dict, dict]:
    created = served.ok("POST", "/v1/projects", 201, json={"name": project})
    body = {"name": service}
    return created, served.ok("POST", f"/v1/projects/{created['id']}/services", 201, json=body)


def environment_ids(served: Served, project_id: str) -> dict[str, str]:
    return {e["name"]: e["id"] for e in served.ok("GET", f"/v1/projects/{project_id}/environments")}


# --- init ----------------------------------------------------------------------------------------


def test_init_creates_a_project_and_a_service_named_after_the_directory_and_links_it(
    served: Served, env: dict[str, str], tmp_path: Path
) -> None:
    root = directory(tmp_path, "My_Shop.v2 (copy)")

    result = dockyard(env, "init", str(root))

    [project] = served.ok("GET", "/v1/projects")
    [service] = served.ok("GET", f"/v1/projects/{project['id']}/services")
    assert (project["name"], service["name"]) == ("my-shop-v2-copy", "my-shop-v2-copy")
    assert link_of(root) == {
        "project": {"id": project["id"], "name": "my-shop-v2-copy"},
        "service": {"id": service["id"], "name": "my-shop-v2-copy"},
        "environment": "production",
        "api_url": served.url,
    }
    assert f"created project my-shop-v2-copy ({project['id']})" in result.output
    assert f"created service my-shop-v2-copy ({service['id']})" in result.output
    assert "dockyard deploy" in result.output
    # The link names this machine's API: git ignores it without the user's .gitignore changing.
    assert (root / ".dockyard" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_init_twice_reuses_the_project_and_the_service(
    served: Served, env: dict[str, str], tmp_path: Path
) -> None:
    root = directory(tmp_path, "app")
    dockyard(env, "init", str(root), "--project", "shop", "--service", "web")
    first = link_of(root)

    again = dockyard(env, "init", str(root), "--project", "shop", "--service", "web")
    other = directory(tmp_path, "worker")
    dockyard(env, "init", str(other), "--project", "shop", "--service", "worker")

    assert link_of(root) == first
    assert f"using project shop ({first['project']['id']})" in again.output
    assert f"using service web ({first['service']['id']})" in again.output
    [project] = served.ok("GET", "/v1/projects")
    services = served.ok("GET", f"/v1/projects/{project['id']}/services")
    assert [s["name"] for s in services] == ["web", "worker"]
    assert link_of(other)["project"] == first["project"]


def test_init_uses_a_service_created_by_the_api_with_the_same_name(
    served: Served, env: dict[str, str], tmp_path: Path
) -> None:
    project, service = new_service(served)
    root = directory(tmp_path, "web")

    dockyard(env, "init", str(root), "--project", "shop")

    assert link_of(root)["project"]["id"] == project["id"]
    assert link_of(root)["service"]["id"] == service["id"]


def test_the_default_names_fit_the_api_limits(served: Served, env: dict[str, str], tmp_path: Path) -> None:
    root = directory(tmp_path, "-" + "Ünïcode-Service_" * 6)

    dockyard(env, "init", str(root))

    link = link_of(root)
    assert link["project"]["name"] == valid_name(root.name, 63)
    assert len(link["service"]["name"]) <= 40


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("web", "web"),
        ("My_App.v2", "my-app-v2"),
        ("--café--", "cafe"),
        ("???", "app"),
        ("", "app"),
        ("a" * 39 + "-b", "a" * 39),
    ],
    ids=["valid", "punctuation", "accents-and-dashes", "nothing-left", "empty", "cut-at-a-dash"],
)
def test_valid_name(text: str, name: str) -> None:
    assert valid_name(text, 40) == name


# --- link ----------------------------------------------------------------------------------------


def test_link_by_name_and_by_id(served: Served, env: dict[str, str], tmp_path: Path) -> None:
    project, service = new_service(served)
    by_name, by_id = directory(tmp_path, "by-name"), directory(tmp_path, "by-id")

    dockyard(env, "link", str(by_name), "--project", "shop", "--service", "web")
    dockyard(env, "link", str(by_id), "-p", project["id"], "-s", service["id"])

    expected = {
        "project": {"id": project["id"], "name": "shop"},
        "service": {"id": service["id"], "name": "web"},
        "environment": "production",
        "api_url": served.url,
    }
    assert link_of(by_name) == expected
    assert link_of(by_id) == expected


def test_link_to_another_environment_and_relink(served: Served, env: dict[str, str], tmp_path: Path) -> None:
    project, _ = new_service(served)
    new_service(served, project="blog", service="site")
    served.ok("POST", f"/v1/projects/{project['id']}/environments", 201, json={"name": "staging"})
    root = directory(tmp_path, "app")
    dockyard(env, "link", str(root), "-p", "shop", "-s", "web", "-e", "staging")
    assert link_of(root)["environment"] == "staging"

    result = dockyard(env, "link", str(root), "-p", "blog", "-s", "site")

    assert link_of(root)["service"]["name"] == "site"
    assert "replaces the link to shop/web (staging)" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "shop", "-s", "api"], "no service 'api' in project shop; services: web (svc_"),
        (["-p", "shoe", "-s", "web"], "no project 'shoe'; projects: shop (prj_"),
        (["-p", "shop", "-s", "web", "-e", "qa"], "no environment 'qa' in project shop; environments: "),
    ],
    ids=["service", "project", "environment"],
)
def test_link_to_what_does_not_exist_names_what_does(
    served: Served, env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    new_service(served)
    root = directory(tmp_path, "app")

    result = dockyard(env, "link", str(root), *args, exit_code=1)

    assert message in result.stderr
    assert not (root / ".dockyard").exists()


def test_link_with_no_projects_yet(env: dict[str, str], tmp_path: Path) -> None:
    result = dockyard(env, "link", str(tmp_path), "-p", "shop", "-s", "web", exit_code=1)

    assert "no project 'shop'; there are no projects yet" in result.stderr


# --- unlink and status ---------------------------------------------------------------------------


def test_unlink_removes_the_link(served: Served, env: dict[str, str], tmp_path: Path) -> None:
    root = directory(tmp_path, "app")
    dockyard(env, "init", str(root), "-p", "shop", "-s", "web")

    result = dockyard(env, "unlink", str(root))

    assert f"unlinked {root} from shop/web (production)" in result.output
    assert not (root / ".dockyard").exists()
    assert "is not linked" in dockyard(env, "unlink", str(root)).output
    assert "is not linked to a service" in dockyard(env, "status", str(root), exit_code=1).stderr


def test_unlink_leaves_other_files_in_the_link_directory(env: dict[str, str], tmp_path: Path) -> None:
    root = directory(tmp_path, "app", {".dockyard/notes.txt": "mine"})
    dockyard(env, "init", str(root), "-p", "shop", "-s", "web")

    dockyard(env, "unlink", str(root))

    assert sorted(p.name for p in (root / ".dockyard").iterdir()) == ["notes.txt"]


def test_status_from_a_subdirectory_shows_the_link_and_the_latest_deployment(
    served: Served, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = directory(tmp_path, "app", {"src/deep/main.py": "print('hi')"})
    dockyard(env, "init", str(root), "-p", "shop", "-s", "web")
    link = link_of(root)
    monkeypatch.chdir(root / "src" / "deep")

    before = dockyard(env, "status")
    dockyard(env, "deploy", exit_code=1)  # Temporal is down: recorded, then FAILED at submit
    after = dockyard(env, "status")

    assert before.output.splitlines() == [
        f"Project:     shop ({link['project']['id']})",
        f"Service:     web ({link['service']['id']})",
        "Environment: production",
        f"Linked in:   {root}",
        f"API:         {served.url}",
        "URL:         http://web-production.apps.test:18080",
        "Deployment:  none yet (`dockyard deploy` uploads this directory)",
    ]
    [deployment] = served.ok("GET", f"/v1/services/{link['service']['id']}/deployments")
    assert after.output.splitlines()[-1].startswith(
        f"Deployment:  {deployment['id']} FAILED at submit: Temporal is unavailable"
    )


def test_status_of_a_service_that_is_gone(served: Served, env: dict[str, str], tmp_path: Path) -> None:
    root = directory(tmp_path, "app")
    dockyard(env, "init", str(root), "-p", "shop", "-s", "web")
    link = link_of(root)
    link["service"]["id"] = "svc_gone"
    (root / ".dockyard" / "link.json").write_text(json.dumps(link))

    result = dockyard(env, "status", str(root), exit_code=1)

    assert "service 'svc_gone' not found (HTTP 404); link the directory again" in result.stderr


# --- deploy through the link ---------------------------------------------------------------------


def test_deploy_without_a_link_or_service_says_how_to_link(env: dict[str, str], tmp_path: Path) -> None:
    root = directory(tmp_path, "app")

    result = dockyard(env, "deploy", str(root), exit_code=1)

    assert f"{root} is not linked to a service" in result.stderr
    assert "dockyard link" in result.stderr and "dockyard init" in result.stderr
    assert "--service" in result.stderr


def test_deploy_from_a_subdirectory_uploads_the_linked_directory_to_the_linked_service(
    served_with_temporal: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = served_with_temporal
    env = cli_env(served, tmp_path)
    files = {"index.html": "<h1>hi</h1>", "src/app.py": "print('hi')", ".dockyard/notes.txt": "x"}
    root = directory(tmp_path, "app", files)
    dockyard(env, "init", str(root), "-p", "shop", "-s", "web")
    link = link_of(root)
    monkeypatch.chdir(root / "src")

    result = dockyard(env, "deploy", "--detach")

    assert f"deploying to shop/web (production), linked in {root}" in result.output
    [deployment] = served.ok("GET", f"/v1/services/{link['service']['id']}/deployments")
    assert deployment["status"] == "QUEUED"
    assert deployment["environment_id"] == environment_ids(served, link["project"]["id"])["production"]
    uploaded = served.api.get(f"/internal/sources/{deployment['source']['upload_id']}")
    with tarfile.open(fileobj=io.BytesIO(uploaded.content)) as archive:
        assert sorted(archive.getnames()) == ["index.html", "src", "src/app.py"]


def test_deploy_goes_to_the_links_environment_unless_told_otherwise(
    served: Served, env: dict[str, str], tmp_path: Path
) -> None:
    project, service = new_service(served)
    served.ok("POST", f"/v1/projects/{project['id']}/environments", 201, json={"name": "staging"})
    root = directory(tmp_path, "app")
    dockyard(env, "link", str(root), "-p", "shop", "-s", "web", "-e", "staging")

    # Temporal is down: each deployment is recorded for its environment, then refused at submit.
    refused = dockyard(env, "deploy", str(root), exit_code=1)
    dockyard(env, "deploy", str(root), "-e", "production", exit_code=1)

    assert "deploy refused: Temporal is unavailable" in refused.stderr
    assert "(HTTP 503)" in refused.stderr
    ids = environment_ids(served, project["id"])
    deployments = served.ok("GET", f"/v1/services/{service['id']}/deployments")
    assert [d["environment_id"] for d in deployments] == [ids["production"], ids["staging"]]


def test_deploy_with_service_ignores_the_link(served: Served, env: dict[str, str], tmp_path: Path) -> None:
    _, linked = new_service(served)
    _, other = new_service(served, project="blog", service="site")
    root = directory(tmp_path, "app")
    dockyard(env, "link", str(root), "-p", "shop", "-s", "web")

    result = dockyard(env, "deploy", str(root), "--service", other["id"], exit_code=1)

    assert f"deploying to service {other['id']} (production)" in result.output
    assert served.ok("GET", f"/v1/services/{linked['id']}/deployments") == []
    assert len(served.ok("GET", f"/v1/services/{other['id']}/deployments")) == 1


def test_deploy_refuses_a_link_made_against_another_api(
    served: Served, env: dict[str, str], tmp_path: Path
) -> None:
    root = directory(tmp_path, "app")
    dockyard(env, "init", str(root), "-p", "shop", "-s", "web")
    elsewhere = f"http://127.0.0.1:{free_port()}"

    result = dockyard(env | {"DOCKYARD_PUBLIC_API_URL": elsewhere}, "deploy", str(root), exit_code=1)

    assert f"linked through the API at {served.url}, but the CLI talks to {elsewhere}" in result.stderr


def test_the_link_directory_is_never_packed(tmp_path: Path) -> None:
    root = directory(
        tmp_path, "app", {"index.html": "hi", ".dockyard/link.json": "{}", "sub/.dockyard/link.json": "{}"}
    )

    with tarfile.open(fileobj=io.BytesIO(pack(root))) as archive:
        assert sorted(archive.getnames()) == ["index.html", "sub"]


# --- errors the API answers, or no answer ------------------------------------------------------


def test_an_unreachable_api(served: Served, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = cli_env(served, tmp_path, DOCKYARD_PUBLIC_API_URL=nowhere)

    result = dockyard(env, "init", str(tmp_path), exit_code=1)

    assert f"cannot reach the Dockyard API at {nowhere}" in result.stderr
    assert "dockyard up" in result.stderr


def test_a_bad_token(served: Served, tmp_path: Path) -> None:
    env = cli_env(served, tmp_path, DOCKYARD_API_TOKEN="wrong-token")

    result = dockyard(env, "link", str(tmp_path), "-p", "shop", "-s", "web", exit_code=1)

    assert f"the API at {served.url} refused the token (missing or invalid API token" in result.stderr
    assert "DOCKYARD_API_TOKEN" in result.stderr


def test_a_name_the_api_refuses_names_the_field(served: Served, env: dict[str, str], tmp_path: Path) -> None:
    result = dockyard(env, "init", str(tmp_path), "--project", "Bad Name", exit_code=1)

    assert "cannot create project 'Bad Name': name: String should match pattern" in result.stderr
    assert "(HTTP 422)" in result.stderr
    assert served.ok("GET", "/v1/projects") == []
