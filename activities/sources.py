"""Source activities: fetch a deployment's code onto the builder host and plan its build.

They run on the builders' shared task queue and answer with the queue of the host that now holds
the code, so the build itself runs where the code is (Temporal's worker-specific task queues).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path

from pydantic import Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.control_plane import ControlPlane
from activities.git import Commit, GitCredential, clone
from activities.heartbeat import heartbeating
from core import nixpacks
from core.build import Command
from core.contracts import BuildOptions, Contract, SourceSpec
from core.planner import (
    BaseImages,
    PlanError,
    plan_build,
    read_deploy_config,
    render_dockerfile,
    select_builder,
)
from core.settings import Settings
from core.sources import UnsafeArchive, check_members

READY_FILE = "prepared.json"
NIXPACKS_TIMEOUT_SECONDS = 300
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PrepareSource(Contract):
    deployment_id: str
    service_id: str = Field(description="keys the build caches: one service's caches are its own")
    source: SourceSpec
    build: BuildOptions


class PreparedSource(Contract):
    host_queue: str = Field(description="the task queue of the builder host that holds the code")
    context_dir: str
    builder: str = Field(description="dockerfile | planner | nixpacks")
    dockerfile: str | None = Field(default=None, description="generated Dockerfile (planned builds)")
    dockerfile_path: str | None = Field(default=None, description="the repository's Dockerfile, relative")
    plan: dict[str, object] | None = None
    deploy: dict[str, object] = Field(default_factory=dict, description="deploy keys from config files")
    commit_sha: str | None = None
    commit_message: str | None = Field(default=None, description="the commit's subject (first) line")
    commit_author: str | None = Field(default=None, description="Name <email>")


class DiscardSource(Contract):
    deployment_id: str


def host_task_queue(settings: Settings) -> str:
    return f"{settings.build_task_queue}-{socket.gethostname()}"


class SourceActivities:
    def __init__(self, settings: Settings, base_images: BaseImages) -> None:
        self.settings = settings
        self.base_images = base_images
        self.control_plane = ControlPlane(settings)

    @activity.defn
    async def prepare_source(self, request: PrepareSource) -> PreparedSource:
        """Idempotent: a retry finds the work directory prepared and answers the same."""
        workdir = self.settings.builds_dir / request.deployment_id
        ready = workdir / READY_FILE
        if ready.exists():
            return PreparedSource.model_validate_json(ready.read_text())
        shutil.rmtree(workdir, ignore_errors=True)
        source_dir = workdir / "src"
        source_dir.mkdir(parents=True)
        try:
            # A clone, a large upload or a nixpacks run outlasts the step's heartbeat timeout.
            async with heartbeating():
                commit = await self._fetch(request, workdir, source_dir)
                prepared = await asyncio.to_thread(self._plan, request, source_dir)
        except ApplicationError as exc:
            if exc.non_retryable:  # the deploy ends here: nothing will come back for this directory
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        if commit is not None:
            prepared = prepared.model_copy(update=commit._asdict())
        ready.write_text(prepared.model_dump_json())
        return prepared

    @activity.defn
    async def discard_source(self, request: DiscardSource) -> None:
        await asyncio.to_thread(shutil.rmtree, self.settings.builds_dir / request.deployment_id, True)

    async def _fetch(self, request: PrepareSource, workdir: Path, source_dir: Path) -> Commit | None:
        """Put the code in `source_dir`; answer the commit when it came from a repository."""
        if request.source.kind == "upload":
            await self._fetch_upload(request.source, workdir, source_dir)
            return None
        if request.source.kind == "repo":
            wanted = request.source.credential
            credential = await self._repo_credential(request.service_id) if wanted else None
            return await clone(request.source, source_dir, credential)
        raise ApplicationError(f"nothing to build for a {request.source.kind} source", non_retryable=True)

    def _plan(self, request: PrepareSource, source_dir: Path) -> PreparedSource:
        context = _inside(source_dir, request.build.root_directory or ".", "root_directory")
        if not context.is_dir():
            raise ApplicationError(
                f"root_directory: {request.build.root_directory!r} is not a directory of the source",
                type="PlanFailed",
                non_retryable=True,
            )
        try:
            builder = select_builder(context, None, request.build.dockerfile_path)
            deploy = read_deploy_config(context).model_dump(exclude_none=True)
            prepared = PreparedSource(
                host_queue=host_task_queue(self.settings),
                context_dir=str(context),
                builder=builder,
                deploy=deploy,
            )
            if builder == "dockerfile":
                path = request.build.dockerfile_path or deploy.get("dockerfile_path") or "Dockerfile"
                _inside(context, str(path), "dockerfile_path")
                return prepared.model_copy(update={"dockerfile_path": str(path)})
            if self.settings.build_planner == "nixpacks":
                return self._plan_with_nixpacks(prepared, context, request)
            plan = plan_build(context, _plan_env(request.build))
            return prepared.model_copy(
                update={
                    "dockerfile": render_dockerfile(plan, self.base_images, cache_key=request.service_id),
                    "plan": plan.to_json(),
                }
            )
        except (PlanError, nixpacks.NixpacksError) as exc:
            raise ApplicationError(str(exc), type="PlanFailed", non_retryable=True) from None

    def _plan_with_nixpacks(
        self, prepared: PreparedSource, context: Path, request: PrepareSource
    ) -> PreparedSource:
        """The real nixpacks plans the build and writes its Dockerfile into the context (`.nixpacks/`)."""
        binary = nixpacks.require_binary(self.settings.build_nixpacks_binary)
        env = _plan_env(request.build)
        plan = nixpacks.parse_plan(_run_nixpacks(nixpacks.plan_command(binary, context, env), context))
        _run_nixpacks(nixpacks.dockerfile_command(binary, context, env, request.service_id), context)
        written = nixpacks.generated_dockerfile(context)
        if not written.is_file():
            raise nixpacks.NixpacksError(f"nixpacks build --out wrote no Dockerfile at {written}")
        dockerfile = nixpacks.pin_build_args(written.read_text(), nixpacks.plan_variables(plan))
        return prepared.model_copy(update={"builder": "nixpacks", "plan": plan, "dockerfile": dockerfile})

    async def _repo_credential(self, service_id: str) -> GitCredential | None:
        answer = await self.control_plane.repo_credential(service_id)
        return GitCredential(kind=answer.kind, secret=answer.token) if answer is not None else None

    async def _fetch_upload(self, source: SourceSpec, workdir: Path, source_dir: Path) -> None:
        archive = workdir / "source.tar.gz"
        await self.control_plane.download_source(str(source.upload_id), archive)
        await asyncio.to_thread(_extract, archive, source_dir)
        archive.unlink()


def _plan_env(build: BuildOptions) -> dict[str, str]:
    """The service's own build and start commands win over detection, as NIXPACKS_* variables do."""
    env = dict(build.variables)
    if build.build_command:
        env["NIXPACKS_BUILD_CMD"] = build.build_command
    if build.start_command:
        env["NIXPACKS_START_CMD"] = build.start_command
    return env


def _run_nixpacks(command: Command, cwd: Path) -> str:
    """Run one nixpacks command; answer its stdout, or fail with the end of its output."""
    done = subprocess.run(
        command.argv,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", DEFAULT_PATH), **command.env},
        capture_output=True,
        text=True,
        timeout=NIXPACKS_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        output = nixpacks.last_lines(done.stdout + done.stderr)
        raise nixpacks.NixpacksError(f"nixpacks {command.argv[1]} failed (exit {done.returncode}):\n{output}")
    return done.stdout


def _inside(root: Path, relative: str, field: str) -> Path:
    if "\0" in relative:  # no path holds one: the same ValueError on every attempt otherwise
        raise ApplicationError(
            f"{field}: {relative!r} contains a NUL byte", type="PlanFailed", non_retryable=True
        )
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ApplicationError(f"{field}: {relative!r} leaves the source directory", non_retryable=True)
    return path


def _extract(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            check_members(tar.getmembers())
            tar.extractall(target, filter="data")
    except (tarfile.TarError, UnsafeArchive) as exc:
        raise ApplicationError(
            f"source archive unusable: {exc}", type="SourceInvalid", non_retryable=True
        ) from None


__all__ = ["DiscardSource", "PrepareSource", "PreparedSource", "SourceActivities", "host_task_queue"]
