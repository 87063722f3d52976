"""Activities that end an environment (a closed pull request's preview): stop its services'
workflows, find the images only it used, delete its records. Each is idempotent."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.contracts import RouteKey
from activities.heartbeat import heartbeating
from core.db import Database
from core.models import Deployment, Environment
from core.naming import service_workflow_id

STOP_WAIT_SECONDS = 30.0  # a cancelled service workflow compensates its deploy in flight meanwhile
POLL_SECONDS = 0.2


class EnvironmentActivities:
    def __init__(self, db: Database, client: Client) -> None:
        self.db = db
        self.client = client

    @activity.defn
    async def stop_service_workflow(self, key: RouteKey) -> None:
        """Cancel the service's workflow in the environment and wait until it has closed (a deploy in
        flight compensates first); terminate it if it has not closed in time. Gone already: done."""
        handle = self.client.get_workflow_handle(service_workflow_id(key.service_id, key.environment_id))
        async with heartbeating():
            try:
                if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                    return
                await handle.cancel()
                deadline = asyncio.get_running_loop().time() + STOP_WAIT_SECONDS
                while asyncio.get_running_loop().time() < deadline:
                    if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                        return
                    await asyncio.sleep(POLL_SECONDS)
                await handle.terminate("environment torn down; it did not stop when cancelled")
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise

    @activity.defn
    async def images_only_in(self, environment_id: str) -> list[str]:
        """The images (pinned by digest) the environment's deployments ran that no deployment of
        another environment runs: deleting them takes nothing from anyone else."""
        async with self.db.session() as session:
            mine = set(
                await session.scalars(
                    select(Deployment.image_ref).where(
                        Deployment.environment_id == environment_id, Deployment.image_ref.is_not(None)
                    )
                )
            )
            elsewhere = set(
                await session.scalars(
                    select(Deployment.image_ref).where(
                        Deployment.environment_id != environment_id, Deployment.image_ref.in_(mine)
                    )
                )
            )
        return sorted(ref for ref in mine - elsewhere if ref and "@sha256:" in ref)

    @activity.defn
    async def delete_environment(self, environment_id: str) -> None:
        """Delete the environment with its deployments, routes and variables (cascade)."""
        async with self.db.transaction() as session:
            await session.execute(delete(Environment).where(Environment.id == environment_id))
