"""Hand a deployment to its service's entity workflow (update-with-start)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import DeployAccepted, DeployRequest
from core.naming import deploy_workflow_id, service_workflow_id, teardown_workflow_id
from core.settings import Settings
from core.temporal import connect, search_attributes
from domain.errors import Conflict, DomainError, Unavailable
from workflows.service import ServiceWorkflow, ServiceWorkflowInput
from workflows.teardown import TeardownRequest, TeardownWorkflow

# How long a deploy waits for a worker to accept it before it is answered as queued.
ACCEPT_WAIT_SECONDS = 3.0
DESCRIBE_TIMEOUT = timedelta(seconds=5)

T = TypeVar("T")


class TemporalConnection:
    """Connects on first use, so the API serves reads while Temporal is still starting."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    @classmethod
    def of(cls, settings: Settings, client: Client) -> TemporalConnection:
        """The connection a process has already (the worker's)."""
        return cls(settings, client)

    async def get(self) -> Client:
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await connect(self._settings)
                except Exception as exc:
                    raise Unavailable(
                        f"Temporal is unavailable at {self._settings.temporal_address}: {exc}"
                    ) from None
            return self._client


class DeployRefused(Exception):
    """Temporal answered and did not take the deployment: nothing of it runs. `error` is the answer
    to the caller (the entity refused it: Conflict; Temporal refused the call: Unavailable)."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.detail)
        self.error = error
        self.reason = error.detail


class DeployUnconfirmed(Exception):
    """The call ended without an answer that says whether Temporal has the deployment (a timeout, a
    connection lost mid-call): it may run. Ask Temporal again (the relay, domain/submissions.py)."""


# Status codes with which Temporal answers a call it did not carry out. Any other failure
# (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, UNKNOWN, INTERNAL...) may come after the deploy was
# admitted, so it proves nothing.
REFUSALS = frozenset(
    {
        RPCStatusCode.INVALID_ARGUMENT,
        RPCStatusCode.NOT_FOUND,
        RPCStatusCode.ALREADY_EXISTS,
        RPCStatusCode.PERMISSION_DENIED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.OUT_OF_RANGE,
        RPCStatusCode.UNIMPLEMENTED,
        RPCStatusCode.UNAUTHENTICATED,
    }
)


async def submit_deploy(client: Client, settings: Settings, request: DeployRequest) -> DeployAccepted:
    """Start the service's entity workflow if needed and send it the deploy, in one call.

    Keyed by the deployment id: the ServiceWorkflow refuses a deployment it has queued or deployed,
    and that refusal is answered here as accepted, so submitting again (after a crash, or when an
    earlier call's outcome is unknown) never deploys twice.

    A worker accepts the update within milliseconds. With no worker polling, the SDK would wait
    for acceptance forever; after ACCEPT_WAIT_SECONDS the deploy is left admitted on the started
    workflow (a worker receives it with its first workflow task) and reported as queued.

    Raises DeployRefused when Temporal says no, DeployUnconfirmed when it does not say."""
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
        if already_has(exc, request.deployment_id):
            return _accepted(request)
        raise DeployRefused(Conflict(f"deploy rejected: {exc.cause or exc}")) from None
    except RPCError as exc:
        if exc.status in REFUSALS:
            raise DeployRefused(Unavailable(f"Temporal refused the deploy: {exc.message}")) from None
        raise DeployUnconfirmed(f"Temporal did not answer the deploy: {exc.message}") from None
    except Exception as exc:  # e.g. the SDK's "connection lost": what reached the server is unknown
        raise DeployUnconfirmed(f"Temporal did not answer the deploy: {exc!r}") from None
    return accepted


async def within(seconds: float, call: Awaitable[T]) -> T:
    """`call`'s result, or DeployUnconfirmed after `seconds`, at once. The call is left to end on its
    own (its RPCs have their own deadlines): the SDK turns a cancellation into an error it handles
    and goes on, so cancelling it would not stop it sooner, and waiting for it would take as long as
    the call this is meant to bound."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.add_done_callback(_forget)
        raise DeployUnconfirmed(f"Temporal did not answer within {seconds:g}s")
    return task.result()


def _forget(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: its outcome is for the relay to find out


def already_has(error: WorkflowUpdateFailedError, deployment_id: str) -> bool:
    """Whether the ServiceWorkflow refused the deploy because it already has this deployment (its
    validator's words: `deployment <id> is already queued` / `... was already deployed`; workers of
    versions before 2026-12 said `released`)."""
    cause = error.cause
    message = cause.message if isinstance(cause, FailureError) else str(cause or "")
    known = ("is already queued", "was already deployed", "was already released")
    return message.startswith(tuple(f"deployment {deployment_id} {words}" for words in known))


async def deploy_workflow_started(client: Client, workflow_id: str) -> bool:
    """Whether a deploy of the deployment (its DeployWorkflow, `deploy/<service>/<env>/<id>`) ever
    started. Raises DeployUnconfirmed when Temporal does not say."""
    try:
        await client.get_workflow_handle(workflow_id).describe(rpc_timeout=DESCRIBE_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise DeployUnconfirmed(f"Temporal did not describe {workflow_id}: {exc.message}") from None
    return True


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
        raise Unavailable(f"Temporal refused the teardown: {exc.message}") from None
    return workflow_id


async def _queued_without_worker(client: Client, workflow_id: str, request: DeployRequest) -> DeployAccepted:
    try:
        description = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=DESCRIBE_TIMEOUT)
    except RPCError as exc:
        raise DeployUnconfirmed(f"Temporal did not describe {workflow_id}: {exc.message}") from None
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise DeployUnconfirmed(f"Temporal did not start {workflow_id} (it is {description.status})")
    return _accepted(request)


def _accepted(request: DeployRequest) -> DeployAccepted:
    return DeployAccepted(
        deployment_id=request.deployment_id,
        workflow_id=deploy_workflow_id(request.service_id, request.environment_id, request.deployment_id),
    )
