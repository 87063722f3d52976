"""ServiceWorkflow: the entity workflow of one service in one environment (`service/<id>/<env>`).

Operations arrive as validated updates and run one at a time, each release as a child
DeployWorkflow. A newer deploy supersedes an in-flight one by cancelling it (its compensations
run, it ends SUPERSEDED); queued deploys that were never started are superseded directly.

    update deploy ─▶ queue ─▶ [run loop] ─▶ child DeployWorkflow ─▶ result
                       ▲                           │
                       └── newer deploy cancels ───┘
"""

from __future__ import annotations

import asyncio

from pydantic import Field
from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import StatusUpdate
    from activities.deployments import DeploymentActivities
    from core.contracts import Contract, DeployAccepted, DeploymentStatus, DeployRequest
    from core.naming import deploy_workflow_id
    from core.temporal import search_attributes
    from workflows.deploy import QUICK, DeployParams, DeployWorkflow


class ServiceWorkflowInput(Contract):
    service_id: str
    environment_id: str
    apps_domain: str
    drain_seconds: float = 0.5
    queue: list[DeployRequest] = Field(default_factory=list)


@workflow.defn
class ServiceWorkflow:
    def __init__(self) -> None:
        self._queue: list[DeployRequest] = []
        self._current: workflow.ChildWorkflowHandle | None = None
        self._current_id: str | None = None

    @workflow.run
    async def run(self, args: ServiceWorkflowInput) -> None:
        self._queue.extend(args.queue)
        while True:
            await workflow.wait_condition(
                lambda: bool(self._queue) or workflow.info().is_continue_as_new_suggested()
            )
            if not self._queue:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(args.model_copy(update={"queue": []}))
            request = self._queue.pop()
            for stale in self._queue:
                await self._supersede(stale.deployment_id)
            self._queue.clear()
            await self._release(args, request)

    @workflow.update
    async def deploy(self, request: DeployRequest) -> DeployAccepted:
        self._queue.append(request)
        if self._current is not None and not self._current.done():
            self._current.cancel()
        return DeployAccepted(
            deployment_id=request.deployment_id,
            workflow_id=deploy_workflow_id(request.service_id, request.environment_id, request.deployment_id),
        )

    @deploy.validator
    def validate_deploy(self, request: DeployRequest) -> None:
        info = workflow.info()
        expected = f"service/{request.service_id}/{request.environment_id}"
        if info.workflow_id != expected:
            raise ValueError(f"deploy for {expected} sent to {info.workflow_id}")
        if any(q.deployment_id == request.deployment_id for q in self._queue) or (
            self._current_id == request.deployment_id
        ):
            raise ValueError(f"deployment {request.deployment_id} is already queued")

    @workflow.query
    def current_deployment(self) -> str | None:
        return self._current_id

    async def _release(self, args: ServiceWorkflowInput, request: DeployRequest) -> None:
        params = DeployParams(
            **request.model_dump(), apps_domain=args.apps_domain, drain_seconds=args.drain_seconds
        )
        self._current_id = request.deployment_id
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
            await self._current
        except (ChildWorkflowError, asyncio.CancelledError) as exc:
            # The child has recorded FAILED or SUPERSEDED itself; the entity carries on.
            workflow.logger.info("deployment %s ended: %s", request.deployment_id, exc)
        finally:
            self._current = None
            self._current_id = None

    async def _supersede(self, deployment_id: str) -> None:
        await workflow.execute_activity_method(
            DeploymentActivities.set_deployment_status,
            StatusUpdate(
                deployment_id=deployment_id,
                status=DeploymentStatus.SUPERSEDED,
                message="superseded by a newer deployment before it started",
            ),
            **QUICK,
        )


__all__ = ["ServiceWorkflow", "ServiceWorkflowInput"]
