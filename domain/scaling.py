"""Scaling the ACTIVE deployment in place: the `scale` update of its service's entity workflow
(workflows/service.py runs it as a ScaleWorkflow)."""

from __future__ import annotations

import asyncio

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.service import RPCError, RPCStatusCode

from core.naming import service_workflow_id
from domain.errors import Conflict, Unavailable
from workflows.service import ScaleRequest, ServiceWorkflow

# A worker accepts (or refuses) the update within milliseconds; past this, none is running.
SCALE_ACCEPT_SECONDS = 5.0
# start_update answers a refusal (the validator's) as an outcome, not an error: its handle already
# holds it, and result() raises it at once without a call to the server.
OUTCOME_PEEK_SECONDS = 0.05


class NoServiceWorkflow(Exception):
    """The service's entity workflow is not running (ended, or terminated): nothing to scale in place."""


async def submit_scale(client: Client, request: ScaleRequest) -> None:
    """Returns once the entity has accepted the scale (it runs on in the background). Raises Conflict
    with the entity's reason when it refuses (a deploy or another scale in progress), 503 when no
    worker answers, NoServiceWorkflow when the entity is not running."""
    handle = client.get_workflow_handle(service_workflow_id(request.service_id, request.environment_id))
    try:
        async with asyncio.timeout(SCALE_ACCEPT_SECONDS):
            update = await handle.start_update(
                ServiceWorkflow.scale, request, wait_for_stage=WorkflowUpdateStage.ACCEPTED
            )
        await _raise_if_refused(update)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise Unavailable(
            f"no worker accepted the scale within {SCALE_ACCEPT_SECONDS:g}s: is `dockyard worker` running?",
        ) from None
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise Conflict(f"scale refused: {getattr(cause, 'message', None) or cause or exc}") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NoServiceWorkflow(exc.message) from None
        raise Unavailable(f"Temporal refused the scale: {exc.message}") from None


async def _raise_if_refused(update: WorkflowUpdateHandle[object]) -> None:
    """Raises WorkflowUpdateFailedError when the entity refused the scale; returns when it runs."""
    try:
        async with asyncio.timeout(OUTCOME_PEEK_SECONDS):
            await update.result()
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        return  # accepted: the scale runs on
