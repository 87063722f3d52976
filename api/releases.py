"""Hand a deployment to its service's entity workflow (update-with-start)."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from core.contracts import DeployAccepted, DeployRequest
from core.naming import deploy_workflow_id, service_workflow_id
from core.settings import Settings
from core.temporal import connect, search_attributes
from workflows.service import ServiceWorkflow, ServiceWorkflowInput
from workflows.teardown import TeardownRequest, TeardownWorkflow, teardown_workflow_id

# How long a deploy waits for a worker to accept it before it is answered as queued.
ACCEPT_WAIT_SECONDS = 3.0


class TemporalConnection:
    """Connects on first use, so the API serves reads while Temporal is still starting."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await connect(self._settings)
                except Exception as exc:
                    raise HTTPException(
                        503, f"Temporal is unavailable at {self._settings.temporal_address}: {exc}"
                    ) from None
            return self._client


async def submit_deploy(
    temporal: TemporalConnection, settings: Settings, request: DeployRequest
) -> DeployAccepted:
    """Start the service's entity workflow if needed and send it the deploy, in one call.

    A worker accepts the update within milliseconds. With no worker polling, the SDK would wait
    for acceptance forever; after ACCEPT_WAIT_SECONDS the deploy is left admitted on the started
    workflow (a worker receives it with its first workflow task) and reported as queued."""
    client = await temporal.get()
    workflow_id = service_workflow_id(request.service_id, request.environment_id)
    start = WithStartWorkflowOperation(
        ServiceWorkflow.run,
        ServiceWorkflowInput(
            service_id=request.service_id,
            environment_id=request.environment_id,
            drain_seconds=settings.drain_seconds,
            build_task_queue=settings.build_task_queue,
            build_timeout_seconds=settings.build_timeout_seconds,
            build_memory_limit_bytes=(
                settings.build_memory_limit_mb * 1024 * 1024 if settings.build_memory_limit_mb else None
            ),
        ),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(
            service_id=request.service_id, environment_id=request.environment_id
        ),
    )
    try:
        async with asyncio.timeout(ACCEPT_WAIT_SECONDS):
            accepted: DeployAccepted = await client.execute_update_with_start_workflow(
                ServiceWorkflow.deploy, request, start_workflow_operation=start
            )
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        # The SDK reports our timeout's cancellation as its own error type.
        return await _queued_without_worker(client, workflow_id, request)
    except WorkflowUpdateFailedError as exc:
        raise HTTPException(409, f"deploy rejected: {exc.cause or exc}") from None
    except RPCError as exc:
        raise HTTPException(503, f"Temporal refused the deploy: {exc.message}") from None
    return accepted


async def start_teardown(temporal: TemporalConnection, settings: Settings, request: TeardownRequest) -> str:
    """Start removing an environment (TeardownWorkflow); a teardown already running is joined.
    Answers its workflow id."""
    client = await temporal.get()
    workflow_id = teardown_workflow_id(request.environment_id)
    try:
        await client.start_workflow(
            TeardownWorkflow.run,
            request,
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes(environment_id=request.environment_id),
        )
    except RPCError as exc:
        raise HTTPException(503, f"Temporal refused the teardown: {exc.message}") from None
    return workflow_id


async def _queued_without_worker(client: Client, workflow_id: str, request: DeployRequest) -> DeployAccepted:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        raise HTTPException(503, f"Temporal did not start {workflow_id}: {exc.message}") from None
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise HTTPException(503, f"Temporal did not start {workflow_id} (it is {description.status})")
    return DeployAccepted(
        deployment_id=request.deployment_id,
        workflow_id=deploy_workflow_id(request.service_id, request.environment_id, request.deployment_id),
    )
