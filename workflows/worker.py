"""The `dockyard worker` process: one Temporal worker running Dockyard's workflows and activities."""

from __future__ import annotations

import asyncio
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from activities.agents import AgentActivities
from activities.deployments import DeploymentActivities
from activities.registry import RegistryActivities
from activities.routing import RoutingActivities
from core.db import Database
from core.settings import Settings
from core.temporal import connect
from workflows.deploy import DeployWorkflow
from workflows.service import ServiceWorkflow

WORKFLOWS = [ServiceWorkflow, DeployWorkflow]


def activities_for(settings: Settings, db: Database) -> list[object]:
    deployments = DeploymentActivities(db)
    registry = RegistryActivities(settings)
    agents = AgentActivities(settings)
    routing = RoutingActivities(db, settings)
    return [
        deployments.set_deployment_status,
        deployments.record_replicas,
        deployments.activate_deployment,
        deployments.mark_replicas_removed,
        registry.resolve_image,
        agents.ensure_replicas,
        agents.wait_replicas_healthy,
        agents.remove_replicas,
        agents.remove_orphan_replicas,
        routing.get_route,
        routing.publish_route,
        routing.unpublish_route,
        routing.wait_route_live,
    ]


def build_worker(client: Client, settings: Settings, db: Database) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(settings, db),  # type: ignore[arg-type]
    )


async def run_worker(settings: Settings) -> None:
    client = await connect(settings)
    db = Database(settings.database_url)
    worker = build_worker(client, settings, db)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with worker:
            await stop.wait()
    finally:
        await db.dispose()
