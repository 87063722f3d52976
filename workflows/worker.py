"""The `dockyard worker` process: Temporal workers for Dockyard's workflows and activities.

One process runs, by default, both the orchestration worker (workflows and the activities that
talk to the database, registry, agents and Traefik) and a builder: the shared build queue, where
sources are fetched and planned, and this host's own build queue, where the image is built next
to its source. `--role` splits them so builders can run on dedicated hosts.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from enum import StrEnum

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities.agents import AgentActivities
from activities.autoscaling import AutoscalingActivities
from activities.builds import BuildActivities
from activities.deployments import DeploymentActivities
from activities.environments import EnvironmentActivities
from activities.fleet import FleetActivities
from activities.nodes import NodeActivities
from activities.pools import PoolActivities
from activities.proxmox import ProxmoxActivities
from activities.registry import RegistryActivities
from activities.routing import RoutingActivities
from activities.scale import ScaleActivities
from activities.sources import SourceActivities, host_task_queue
from core.db import Database
from core.naming import FLEET_WATCH_ID
from core.planner import BaseImages
from core.settings import Settings
from core.temporal import connect
from domain.autoscaling import ensure_autoscalers
from domain.errors import DomainError
from domain.temporal import TemporalConnection
from workflows.autoscale import AutoscalerWorkflow
from workflows.deploy import DeployWorkflow
from workflows.fleet import FleetWatchInput, FleetWatchWorkflow
from workflows.pools import DecommissionNodeWorkflow, NodePoolWorkflow, ProvisionNodeWorkflow
from workflows.scale import ScaleWorkflow
from workflows.service import ServiceWorkflow
from workflows.teardown import TeardownWorkflow

WORKFLOWS = [ServiceWorkflow, DeployWorkflow, TeardownWorkflow, FleetWatchWorkflow]
WORKFLOWS += [NodePoolWorkflow, ProvisionNodeWorkflow, DecommissionNodeWorkflow]
WORKFLOWS += [ScaleWorkflow, AutoscalerWorkflow]
DEBIAN_BASE_REPOSITORY = "dockyard/debian:bookworm"  # pushed by infra/images/build-base-images.sh


class Role(StrEnum):
    ALL = "all"
    ORCHESTRATOR = "orchestrator"
    BUILDER = "builder"


def activities_for(settings: Settings, db: Database, client: Client) -> list[object]:
    deployments = DeploymentActivities(db, settings.redis_url)
    registry = RegistryActivities(settings)
    agents = AgentActivities(settings, db)
    routing = RoutingActivities(db, settings)
    environments = EnvironmentActivities(db, client)
    nodes = NodeActivities(db)
    temporal = TemporalConnection.of(settings, client)
    fleet = FleetActivities(db, settings, temporal)
    proxmox = ProxmoxActivities(settings)
    pools = PoolActivities(db, settings, temporal, proxmox)
    scale = ScaleActivities(db, settings)
    autoscaling = AutoscalingActivities(db, settings, temporal)
    return [
        autoscaling.load_autoscaling,
        autoscaling.observe,
        autoscaling.record_decision,
        autoscaling.scale,
        proxmox.choose_pve_node,
        proxmox.allocate_guest,
        proxmox.wait_pve_task,
        proxmox.configure_guest,
        proxmox.start_guest,
        proxmox.write_join_data,
        proxmox.guest_address,
        proxmox.stop_guest,
        proxmox.destroy_guest,
        pools.load_pool,
        pools.finish_pool_removal,
        pools.record_pool_node,
        pools.update_pool_node,
        pools.issue_join_token,
        pools.revoke_join_tokens,
        pools.check_node_enrolled,
        pools.cordon_node,
        pools.uncordon_node,
        pools.drain_node,
        pools.remove_node,
        pools.check_node_drained,
        pools.locate_guest,
        fleet.mark_silent_nodes,
        fleet.heal_node,
        fleet.replace_missing_replicas,
        deployments.set_deployment_status,
        deployments.record_replicas,
        deployments.activate_deployment,
        deployments.mark_replicas_removed,
        deployments.roll_back_deployment,
        deployments.save_build_log,
        registry.resolve_image,
        registry.delete_image,
        environments.stop_service_workflow,
        environments.images_only_in,
        environments.delete_environment,
        nodes.place_replicas,
        agents.ensure_replicas,
        agents.wait_replicas_healthy,
        agents.watch_replicas_stable,
        agents.remove_replicas,
        agents.remove_orphan_replicas,
        agents.remove_unowned_replicas,
        routing.get_route,
        routing.publish_route,
        routing.unpublish_route,
        routing.publish_route_fallback,
        routing.clear_route_fallback,
        routing.wait_route_live,
        routing.follow_replicas,
        scale.load_scale_state,
        scale.place_added_replicas,
        scale.set_replica_rows,
        scale.record_scale,
    ]


def base_images(settings: Settings) -> BaseImages:
    """Every provider builds on the Debian image infra/images/ pushes to Dockyard's registry, unless
    DOCKYARD_BUILD_BASE_IMAGES names another (e.g. {"node": "node:20-bookworm-slim"})."""
    uniform = BaseImages.uniform(f"{settings.registry_host}/{DEBIAN_BASE_REPOSITORY}")
    return uniform.model_copy(update=settings.build_base_images)


def build_worker(client: Client, settings: Settings, db: Database) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(settings, db, client),  # type: ignore[arg-type]
    )


def builder_workers(client: Client, settings: Settings) -> list[Worker]:
    sources = SourceActivities(settings, base_images(settings))
    builds = BuildActivities(settings, settings.redis_url)
    return [
        Worker(client, task_queue=settings.build_task_queue, activities=[sources.prepare_source]),
        Worker(
            client,
            task_queue=host_task_queue(settings),
            activities=[builds.build_image, sources.discard_source],
        ),
    ]


async def run_worker(settings: Settings, role: Role = Role.ALL) -> None:
    client = await connect(settings)
    db = Database(settings.database_url)
    workers = []
    if role in (Role.ALL, Role.ORCHESTRATOR):
        workers.append(build_worker(client, settings, db))
        await start_fleet_watch(client, settings)
        await start_autoscalers(client, settings, db)
    if role in (Role.ALL, Role.BUILDER):
        workers.extend(builder_workers(client, settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.gather(*(_run_until(worker, stop) for worker in workers))
    finally:
        await db.dispose()


async def start_fleet_watch(client: Client, settings: Settings) -> None:
    """The one watch over the nodes (FleetWatchWorkflow); a running one is joined."""
    await client.start_workflow(
        FleetWatchWorkflow.run,
        FleetWatchInput(probe_interval_seconds=settings.node_probe_interval_seconds),
        id=FLEET_WATCH_ID,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def start_autoscalers(client: Client, settings: Settings, db: Database) -> None:
    """An autoscaler for every recorded policy (a policy saved while Temporal was away has none yet)."""
    try:
        async with db.session() as session:
            await ensure_autoscalers(session, client, settings)
    except DomainError as exc:
        logging.getLogger("dockyard.worker").warning("autoscalers not started: %s", exc.detail)


async def _run_until(worker: Worker, stop: asyncio.Event) -> None:
    async with worker:
        await stop.wait()
