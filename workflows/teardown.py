"""TeardownWorkflow: remove an environment and everything it runs (a closed pull request's preview).

    stop each service's workflow (a deploy in flight compensates) → remove every replica and route
    → delete the images only this environment used → delete the environment's records

Every step is idempotent and retried, so a teardown interrupted anywhere (a worker killed, the
registry restarting) finishes when it resumes. Its workflow id is `teardown/<environment id>`: a
repeated request joins the running teardown instead of starting another.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from activities.contracts import OrphanQuery, RouteKey
    from activities.environments import EnvironmentActivities
    from activities.registry import RegistryActivities
    from activities.routing import RoutingActivities
    from core.contracts import Contract
    from workflows.deploy import QUICK, SLOW


class TeardownRequest(Contract):
    environment_id: str
    service_ids: list[str]


@workflow.defn
class TeardownWorkflow:
    def __init__(self) -> None:
        self._step = "starting"

    @workflow.query
    def step(self) -> str:
        return self._step

    @workflow.run
    async def run(self, request: TeardownRequest) -> list[str]:
        """Answers the images deleted."""
        keys = [RouteKey(service_id=s, environment_id=request.environment_id) for s in request.service_ids]

        self._step = "stop services"
        await asyncio.gather(
            *(
                workflow.execute_activity_method(EnvironmentActivities.stop_service_workflow, key, **SLOW)
                for key in keys
            )
        )

        self._step = "remove replicas and routes"
        await asyncio.gather(*(self._remove(key) for key in keys))

        self._step = "delete images"
        images: list[str] = await workflow.execute_activity_method(
            EnvironmentActivities.images_only_in, request.environment_id, **QUICK
        )
        await asyncio.gather(
            *(
                workflow.execute_activity_method(RegistryActivities.delete_image, image, **QUICK)
                for image in images
            )
        )

        self._step = "delete records"
        await workflow.execute_activity_method(
            EnvironmentActivities.delete_environment, request.environment_id, **QUICK
        )
        self._step = "done"
        return images

    async def _remove(self, key: RouteKey) -> None:
        await workflow.execute_activity_method(RoutingActivities.unpublish_route, key, **QUICK)
        await workflow.execute_activity_method(
            AgentActivities.remove_orphan_replicas,
            OrphanQuery(service_id=key.service_id, environment_id=key.environment_id, keep_deployment_ids=[]),
            **SLOW,
        )
