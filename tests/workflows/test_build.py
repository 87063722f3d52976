"""The build step of DeployWorkflow: code is fetched and planned on the builders' queue, built on
the queue of the host that holds it, and the deploy goes on with the built image's digest."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from core.contracts import DeploymentStatus, SourceSpec
from tests.workflows.harness import Dockyard

pytestmark = pytest.mark.timeout(120)

UPLOAD = SourceSpec(kind="upload", upload_id="upl_1")
REPO = SourceSpec(kind="repo", repo_url="https://git.example/shop.git", ref="main")


async def deploy_code(dockyard: Dockyard, deployment_id: str) -> None:
    await dockyard.deploy(deployment_id, image=None, source=UPLOAD, image_repository="registry.test/web")


async def test_code_is_built_then_released_with_the_built_digest(dockyard: Dockyard) -> None:
    await deploy_code(dockyard, "dep-a")

    await dockyard.result("dep-a")

    fakes = dockyard.fakes
    names = fakes.names()
    order = [names.index(name) for name in ("prepare_source", "build_image", "ensure_replicas")]
    assert order == sorted(order)
    assert {"save_build_log", "discard_source"} <= set(names[order[1] :])
    assert "resolve_image" not in names
    [build] = fakes.args("build_image")
    assert (build.image_repository, build.tag, build.context_dir) == (
        "registry.test/web",
        "dep-a",
        "/builds/dep-a/src",
    )
    started = fakes.last_update("dep-a")
    assert started.status is DeploymentStatus.ACTIVE
    statuses = fakes.statuses("dep-a")
    assert statuses[:2] == [DeploymentStatus.BUILDING, DeploymentStatus.BUILDING]
    [batch] = fakes.args("ensure_replicas")
    assert {spec.image.split("@")[0] for spec in batch.specs} == {"registry.test/web"}


async def test_the_release_goes_on_while_the_build_log_is_kept_and_ends_after_it(dockyard: Dockyard) -> None:
    """Keeping the log and freeing the work directory are housekeeping: off the critical path,
    but joined before the deployment's workflow ends."""
    fakes = dockyard.fakes
    saving = fakes.block("save_build_log", deployment="dep-a")
    activating = fakes.block("activate_deployment", deployment="dep-a")
    await deploy_code(dockyard, "dep-a")

    await saving.entered.wait()
    async with asyncio.timeout(30):
        await activating.entered.wait()  # the deploy reached the cut-over, the log still being saved
    activating.release()
    await asyncio.sleep(0.5)
    running = await dockyard.child("dep-a").describe()
    assert running.status is WorkflowExecutionStatus.RUNNING
    saving.release()
    await dockyard.result("dep-a")
    assert fakes.names("dep-a").count("save_build_log") == 1


async def test_the_commit_built_is_recorded_with_the_deployment(dockyard: Dockyard) -> None:
    dockyard.fakes.commit_sha = "c0ffee" * 6 + "beef"
    await dockyard.deploy("dep-a", image=None, source=REPO, image_repository="registry.test/web")
    await dockyard.result("dep-a")

    building = [u for u in dockyard.fakes.updates["dep-a"] if u.commit_sha]
    assert [(u.commit_sha, u.commit_message, u.commit_author) for u in building] == [
        ("c0ffee" * 6 + "beef", "Fix the checkout page", "Ada Lovelace <ada@example.com>")
    ]


async def test_a_failed_build_ends_failed_at_build_keeps_its_log_and_starts_nothing(
    dockyard: Dockyard,
) -> None:
    fakes = dockyard.fakes
    fakes.fail(
        "build_image",
        "build failed at step [3/5] RUN npm ci: exit code: 1",
        type="BuildFailed",
        deployment="dep-a",
    )
    await deploy_code(dockyard, "dep-a")

    with pytest.raises(WorkflowFailureError):
        await dockyard.result("dep-a")

    failed = fakes.last_update("dep-a")
    assert (failed.status, failed.failed_step) == (DeploymentStatus.FAILED, "build")
    assert failed.message == "build failed at step [3/5] RUN npm ci: exit code: 1"
    assert "save_build_log" in fakes.names("dep-a") and "discard_source" in fakes.names("dep-a")
    assert "ensure_replicas" not in fakes.names("dep-a")


async def test_deploy_keys_in_the_codes_config_files_win(dockyard: Dockyard) -> None:
    dockyard.fakes.deploy_config = {"num_replicas": 3, "healthcheck_path": "/ready"}
    await deploy_code(dockyard, "dep-a")

    await dockyard.result("dep-a")

    [batch] = dockyard.fakes.args("ensure_replicas")
    assert len(batch.specs) == 3
    assert {spec.health_check.path for spec in batch.specs} == {"/ready"}


async def test_a_plan_that_fails_is_reported_as_the_build_step(dockyard: Dockyard) -> None:
    dockyard.fakes.fail(
        "prepare_source",
        "nixpacks.toml: phases.build.cmds: expected a list of strings",
        type="PlanFailed",
        deployment="dep-a",
    )
    await deploy_code(dockyard, "dep-a")

    with pytest.raises(WorkflowFailureError) as failure:
        await dockyard.result("dep-a")

    failed = dockyard.fakes.last_update("dep-a")
    assert (failed.status, failed.failed_step) == (DeploymentStatus.FAILED, "build")
    assert "nixpacks.toml: phases.build.cmds" in (failed.message or "")
    assert isinstance(failure.value.cause, ApplicationError)
