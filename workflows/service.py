"""ServiceWorkflow: the entity workflow of one service in one environment (`service/<id>/<env>`).

Operations arrive as validated updates and run one at a time, each deploy as a child
DeployWorkflow. A newer deploy supersedes an in-flight one by cancelling it (its compensations
run, it ends SUPERSEDED); queued deploys that were never started are superseded directly.

A scale (more or fewer replicas of the ACTIVE deployment) runs as a child ScaleWorkflow. It is
refused while a deploy is queued or running (the deployment it names is about to be replaced: the
user scales once the deploy is done), and a deploy arriving during a scale waits for it to end.

    update deploy ─▶ queue ─▶ [run loop] ─▶ child DeployWorkflow ─▶ result
                       ▲                           │
                       └── newer deploy cancels ───┘
"""

from __future__ import annotations

import asyncio
from collections import deque

from pydantic import AliasChoices, Field
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.contracts import StatusUpdate
    from activities.deployments import DeploymentActivities
    from core.contracts import Contract, DeployAccepted, DeploymentStatus, DeployRequest
    from core.naming import deploy_workflow_id, scale_workflow_id, service_workflow_id
    from core.temporal import search_attributes
    from workflows.deploy import FINAL_STATUS, DeployParams, DeployWorkflow
    from workflows.scale import ScaleParams, ScaleResult, ScaleWorkflow


DEPLOYED_IDS_KEPT = 200


class ScaleRequest(Contract):
    service_id: str
    environment_id: str
    deployment_id: str = Field(description="the ACTIVE deployment")
    replicas: int


class ServiceWorkflowInput(Contract):
    service_id: str
    environment_id: str
    drain_seconds: float = 0.5
    build_task_queue: str = "dockyard-builds"
    build_timeout_seconds: float = 1800
    build_memory_limit_bytes: int | None = None
    queue: list[DeployRequest] = Field(default_factory=list)
    # Named `released` in histories recorded before 2026-12: still read.
    deployed: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("deployed", "released"),
        description="ids of the latest deployments deployed, oldest first",
    )


@workflow.defn
class ServiceWorkflow:
    def __init__(self) -> None:
        self._queue: list[DeployRequest] = []
        self._current: workflow.ChildWorkflowHandle | None = None
        self._current_id: str | None = None
        self._superseding = False  # this entity cancelled its current deploy for a newer one
        # Deployment ids already deployed, so a replayed request can never move traffic back.
        self._deployed: deque[str] = deque(maxlen=DEPLOYED_IDS_KEPT)
        self._args: ServiceWorkflowInput | None = None
        self._scaling: ScaleRequest | None = None

    @workflow.run
    async def run(self, args: ServiceWorkflowInput) -> None:
        self._args = args
        self._queue.extend(args.queue)
        self._deployed.extend(args.deployed)
        while True:
            await workflow.wait_condition(
                lambda: bool(self._queue) or workflow.info().is_continue_as_new_suggested()
            )
            if not self._queue:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    args.model_copy(update={"queue": list(self._queue), "deployed": list(self._deployed)})
                )
            if self._scaling is not None:
                await workflow.wait_condition(lambda: self._scaling is None)
            request = self._queue.pop()
            self._current_id = request.deployment_id
            # Older deploys leave the queue only once superseded (the validator still sees them); a
            # deploy arriving meanwhile is newer than `request`: it stays queued and supersedes it.
            for older in list(self._queue):
                await self._supersede(older.deployment_id)
                self._queue.remove(older)
            await self._run_deploy(args, request)

    @workflow.update
    async def deploy(self, request: DeployRequest) -> DeployAccepted:
        self._queue.append(request)
        if self._current is not None and not self._current.done():
            self._superseding = True
            self._current.cancel()
        return DeployAccepted(
            deployment_id=request.deployment_id,
            workflow_id=deploy_workflow_id(request.service_id, request.environment_id, request.deployment_id),
        )

    @deploy.validator
    def validate_deploy(self, request: DeployRequest) -> None:
        info = workflow.info()
        expected = service_workflow_id(request.service_id, request.environment_id)
        if info.workflow_id != expected:
            raise ValueError(f"deploy for {expected} sent to {info.workflow_id}")
        if any(q.deployment_id == request.deployment_id for q in self._queue) or (
            self._current_id == request.deployment_id
        ):
            raise ValueError(f"deployment {request.deployment_id} is already queued")
        if request.deployment_id in self._deployed:
            raise ValueError(f"deployment {request.deployment_id} was already deployed; deploy anew instead")

    @workflow.query
    def current_deployment(self) -> str | None:
        return self._current_id

    @workflow.update
    async def scale(self, request: ScaleRequest) -> ScaleResult:
        self._scaling = request
        try:
            await workflow.wait_condition(lambda: self._args is not None)
            assert self._args is not None
            return await workflow.execute_child_workflow(
                ScaleWorkflow.run,
                ScaleParams(
                    service_id=request.service_id,
                    environment_id=request.environment_id,
                    deployment_id=request.deployment_id,
                    replicas=request.replicas,
                    overlap_seconds=self._args.drain_seconds,
                ),
                id=scale_workflow_id(
                    request.service_id, request.environment_id, request.deployment_id, request.replicas
                ),
                search_attributes=search_attributes(
                    service_id=request.service_id,
                    environment_id=request.environment_id,
                    deployment_id=request.deployment_id,
                ),
            )
        except ChildWorkflowError as exc:
            # The update fails with the step and the reason; the entity carries on.
            raise ApplicationError(str(exc.cause or exc), type="ScaleFailed", non_retryable=True) from None
        finally:
            self._scaling = None

    @scale.validator
    def validate_scale(self, request: ScaleRequest) -> None:
        info = workflow.info()
        expected = service_workflow_id(request.service_id, request.environment_id)
        if info.workflow_id != expected:
            raise ValueError(f"scale for {expected} sent to {info.workflow_id}")
        if self._scaling is not None:
            raise ValueError(
                f"a scale of {self._scaling.deployment_id} to {self._scaling.replicas} replicas is in "
                "progress; scale again once it is done"
            )
        deploying = self._current_id or (self._queue[-1].deployment_id if self._queue else None)
        if deploying is not None:
            raise ValueError(f"deployment {deploying} is being deployed; scale once its deploy is done")

    async def _run_deploy(self, args: ServiceWorkflowInput, request: DeployRequest) -> None:
        params = DeployParams(
            **request.model_dump(),
            drain_seconds=args.drain_seconds,
            build_task_queue=args.build_task_queue,
            build_timeout_seconds=args.build_timeout_seconds,
            build_memory_limit_bytes=args.build_memory_limit_bytes,
        )
        self._current_id = request.deployment_id
        self._deployed.append(request.deployment_id)
        try:
            self._current = await workflow.start_child_workflow(
                DeployWorkflow.run,
                params,
                id=deploy_workflow_id(request.service_id, request.environment_id, request.deployment_id),
                search_attributes=search_attributes(
                    service_id=request.service_id,
                    environment_id=request.environment_id,
                    deployment_id=request.deployment_id,
                ),
            )
            if self._queue:
                # A newer deploy arrived while this one was starting, when there was nothing to cancel.
                self._superseding = True
                self._current.cancel()
            await self._current
        except ChildWorkflowError as exc:
            if is_cancelled_exception(exc) and not self._superseding:
                # Nobody here cancelled it: the entity itself is being cancelled (say, from the
                # Temporal UI), and Temporal passed that on to the deploy. End the entity too.
                raise asyncio.CancelledError(
                    f"service workflow cancelled during {request.deployment_id}"
                ) from exc
            # The child has recorded FAILED or SUPERSEDED itself; the entity carries on.
            workflow.logger.info("deployment %s ended: %s", request.deployment_id, exc)
        finally:
            self._current = None
            self._current_id = None
            self._superseding = False

    async def _supersede(self, deployment_id: str) -> None:
        """Record a queued deploy superseded. With the budget of a final status; should even that run
        out (the database away for long), the entity logs it and carries on: its own failure would
        stop every later deploy of the service."""
        try:
            await workflow.execute_activity_method(
                DeploymentActivities.set_deployment_status,
                StatusUpdate(
                    deployment_id=deployment_id,
                    status=DeploymentStatus.SUPERSEDED,
                    message="superseded by a newer deployment before it started",
                ),
                **FINAL_STATUS,
            )
        except ActivityError as exc:
            workflow.logger.error("deployment %s not recorded superseded: %s", deployment_id, exc)


__all__ = ["ScaleRequest", "ServiceWorkflow", "ServiceWorkflowInput"]
