"""How domain/temporal.submit_deploy reads the end of a call to Temporal: refused (nothing runs: FAILED at
submit), accepted (the ServiceWorkflow already has the deployment counts), or unconfirmed (it may run:
the relay asks again). The call's outcome is given by a stand-in for the client; the real server's
answers are in tests/integration/api/test_submissions.py and tests/workflows/test_service.py."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import DeployAccepted, DeployRequest
from core.settings import load_settings
from domain.errors import Conflict, DomainError, Unavailable
from domain.temporal import DeployRefused, DeployUnconfirmed, submit_deploy

REQUEST = DeployRequest(
    deployment_id="dep-a",
    service_id="svc-a",
    service_name="web",
    environment_id="env-a",
    environment_name="production",
    hostname="web-production.apps.test",
    image="registry.test/web:1",
)


class Answering:
    """A client whose update-with-start ends with `outcome` (raised when it is an exception)."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    async def execute_update_with_start_workflow(self, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def rejected(message: str) -> WorkflowUpdateFailedError:
    return WorkflowUpdateFailedError(ApplicationError(message, type="ValueError"))


def rpc(status: RPCStatusCode) -> RPCError:
    return RPCError(f"{status.name} from the server", status, b"")


async def submit(outcome: Any) -> DeployAccepted:
    return await submit_deploy(Answering(outcome), load_settings(), REQUEST)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param(rejected("deployment dep-a is already queued"), id="already-queued"),
        pytest.param(
            rejected("deployment dep-a was already deployed; deploy anew instead"), id="already-deployed"
        ),
    ],
)
async def test_the_service_workflow_already_having_it_is_accepted(outcome: Exception) -> None:
    assert await submit(outcome) == DeployAccepted(
        deployment_id="dep-a", workflow_id="deploy/svc-a/env-a/dep-a"
    )


@pytest.mark.parametrize(
    ("outcome", "answer"),
    [
        pytest.param(
            rejected("deployment dep-b is already queued"), Conflict, id="another-deployment-queued"
        ),
        pytest.param(
            rejected("deploy for service/svc-a/env-a sent to service/x/y"), Conflict, id="wrong-entity"
        ),
        pytest.param(rpc(RPCStatusCode.INVALID_ARGUMENT), Unavailable, id="invalid-argument"),
        pytest.param(rpc(RPCStatusCode.PERMISSION_DENIED), Unavailable, id="permission-denied"),
        pytest.param(rpc(RPCStatusCode.RESOURCE_EXHAUSTED), Unavailable, id="rate-limited"),
        pytest.param(rpc(RPCStatusCode.NOT_FOUND), Unavailable, id="namespace-not-found"),
    ],
)
async def test_a_refusal_is_refused(outcome: Exception, answer: type[DomainError]) -> None:
    with pytest.raises(DeployRefused) as refused:
        await submit(outcome)
    assert type(refused.value.error) is answer


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param(rpc(RPCStatusCode.UNAVAILABLE), id="unavailable"),
        pytest.param(rpc(RPCStatusCode.DEADLINE_EXCEEDED), id="deadline-exceeded"),
        pytest.param(rpc(RPCStatusCode.CANCELLED), id="cancelled"),
        pytest.param(rpc(RPCStatusCode.UNKNOWN), id="unknown"),
        pytest.param(rpc(RPCStatusCode.INTERNAL), id="internal"),
        pytest.param(RuntimeError("Connection lost"), id="connection-lost"),
    ],
)
async def test_an_error_that_may_come_after_the_deploy_was_taken_is_unconfirmed(outcome: Exception) -> None:
    with pytest.raises(DeployUnconfirmed):
        await submit(outcome)
