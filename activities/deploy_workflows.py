"""What Temporal says of deploys (their DeployWorkflows), for the fleet's reconciliation."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode


async def closed_deploys(client: Client, releases: Mapping[str, str]) -> set[str]:
    """Of `releases` (deployment id → deploy workflow id), the deployments whose release is closed or
    never started. One Temporal does not describe is left out: its replicas are kept for now."""
    states = await asyncio.gather(*(_closed(client, workflow_id) for workflow_id in releases.values()))
    return {deployment_id for deployment_id, closed in zip(releases, states, strict=True) if closed}


async def _closed(client: Client, workflow_id: str) -> bool:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return True
        activity.logger.warning("deploy %s not described (%s): its replicas stay", workflow_id, exc.message)
        return False
    return description.status != WorkflowExecutionStatus.RUNNING
