"""Hand a deployment to its service's entity workflow (update-with-start)."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from core.contracts import DeployAccepted, DeployRequest
from core.naming import service_workflow_id
from core.settings import Settings
from core.temporal import connect, search_attributes
from workflows.service import ServiceWorkflow, ServiceWorkflowInput


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


async def submit_deploy(client: Client, settings: Settings, request: DeployRequest) -> DeployAccepted:
    """Start the service's entity workflow if needed and send it the deploy, in one call."""
    start = WithStartWorkflowOperation(
        ServiceWorkflow.run,
        ServiceWorkflowInput(
            service_id=request.service_id,
            environment_id=request.environment_id,
            apps_domain=settings.apps_domain,
            drain_seconds=settings.drain_seconds,
        ),
        id=service_workflow_id(request.service_id, request.environment_id),
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(
            service_id=request.service_id, environment_id=request.environment_id
        ),
    )
    try:
        accepted: DeployAccepted = await client.execute_update_with_start_workflow(
            ServiceWorkflow.deploy, request, start_workflow_operation=start
        )
    except WorkflowUpdateFailedError as exc:
        raise HTTPException(409, f"deploy rejected: {exc.cause or exc}") from None
    except RPCError as exc:
        raise HTTPException(503, f"Temporal refused the deploy: {exc.message}") from None
    return accepted
