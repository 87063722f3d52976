"""One service+environment under test: deploys sent the way the API sends them, on a worker of our own.

async with harness(client) as dockyard:
    await dockyard.deploy("dep-a")  # update-with-start, as POST /v1/services/{id}/deployments
    result = await dockyard.result("dep-a")  # the child DeployWorkflow's result
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from core.contracts import DeployAccepted, DeployRequest, DeployResult
from core.naming import deploy_workflow_id, service_workflow_id
from core.settings import Settings, load_settings
from domain.temporal import submit_deploy
from tests.workflows.fakes import FakeActivities, image_for
from workflows.worker import WORKFLOWS

APPS_DOMAIN = "apps.test"


@dataclass
class Dockyard:
    client: Client
    settings: Settings
    fakes: FakeActivities
    service_id: str
    environment_id: str = "env-production"

    def request(self, deployment_id: str, **changes: Any) -> DeployRequest:
        fields: dict[str, Any] = {
            "deployment_id": deployment_id,
            "service_id": self.service_id,
            "service_name": "web",
            "environment_id": self.environment_id,
            "environment_name": "production",
            "hostname": f"web-production.{APPS_DOMAIN}",
            "image": image_for(deployment_id),
            "replicas": 2,
            "health_check_path": "/healthz",
        }
        return DeployRequest(**{**fields, **changes})

    async def deploy(self, deployment_id: str, **changes: Any) -> DeployAccepted:
        """What POST /v1/services/{id}/deployments does: update-with-start of the entity workflow."""
        return await submit_deploy(self.client, self.settings, self.request(deployment_id, **changes))

    @property
    def service(self) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(service_workflow_id(self.service_id, self.environment_id))

    def child(self, deployment_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(
            deploy_workflow_id(self.service_id, self.environment_id, deployment_id), result_type=DeployResult
        )

    async def result(self, deployment_id: str) -> DeployResult:
        """The DeployWorkflow's result, once the entity has started it (raises WorkflowFailureError)."""
        for _ in range(1500):  # 30 s
            if await self.child_exists(deployment_id):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"the entity never started deployment {deployment_id}")
        async with asyncio.timeout(60):
            result: DeployResult = await self.child(deployment_id).result()
        return result

    async def child_exists(self, deployment_id: str) -> bool:
        try:
            await self.child(deployment_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def stop(self) -> None:
        """Terminate the entity (its children go with it): nothing of this test keeps running."""
        try:
            await self.service.terminate("test finished")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise


def settings_for(task_queue: str, **changes: Any) -> Settings:
    return load_settings(
        temporal_task_queue=task_queue, apps_domain=APPS_DOMAIN, drain_seconds=0.05, **changes
    )


@asynccontextmanager
async def harness(client: Client, service_id: str | None = None) -> AsyncIterator[Dockyard]:
    """A worker running the real workflows with fake activities, on a task queue of its own."""
    fakes = FakeActivities()
    task_queue = f"dockyard-test-{uuid.uuid4().hex[:12]}"
    fakes.host_queue = f"{task_queue}-builder-host"
    dockyard = Dockyard(
        client=client,
        settings=settings_for(task_queue, build_task_queue=f"{task_queue}-builds"),
        fakes=fakes,
        service_id=service_id or f"svc-{uuid.uuid4().hex[:8]}",
    )
    async with (
        Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=fakes.activities()),
        Worker(client, task_queue=f"{task_queue}-builds", activities=fakes.build_activities()),
        Worker(client, task_queue=fakes.host_queue, activities=fakes.host_activities()),
    ):
        try:
            yield dockyard
        finally:
            fakes.release_all()
            await dockyard.stop()
