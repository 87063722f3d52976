"""Activities of a scale in place: what the ACTIVE deployment runs now, where added replicas go, and
the records a scale leaves (replica rows, the deployment's replica count)."""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import select, update
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agents import AgentActivities
from activities.contracts import NodeRef, Placement, PlacementRequest
from activities.nodes import NodeActivities
from activities.routing import LOCAL_NODE
from core.agent_client import AgentCallError
from core.contracts import Contract, DeploymentStatus, DeployRequest
from core.db import Database
from core.models import LIVE_REPLICA_STATES, Deployment, Node, Replica
from core.settings import Settings


class ScaleTarget(Contract):
    deployment_id: str
    replicas: int


class LiveReplica(Contract):
    replica_id: str
    node: NodeRef = Field(default_factory=NodeRef)
    address: str | None = None
    container_id: str | None = None


class ScaleState(Contract):
    """The ACTIVE deployment as it runs now: what its replicas run, and those that run (as their
    agents report them)."""

    request: DeployRequest
    image: str = Field(description="the pinned image its replicas run")
    replicas: list[LiveReplica]


class ReplicaRows(Contract):
    deployment_id: str
    replica_ids: list[str]
    state: str


class ScaleActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self._agents = AgentActivities(settings, db)
        self._nodes = NodeActivities(db)

    @activity.defn
    async def load_scale_state(self, target: ScaleTarget) -> ScaleState:
        """Raises a non-retryable NotScalable when the deployment is no longer ACTIVE or keeps no
        deploy request (recorded before scaling in place existed)."""
        async with self.db.session() as session:
            deployment = await session.get(Deployment, target.deployment_id)
            if deployment is None or deployment.status != DeploymentStatus.ACTIVE.value:
                status = deployment.status if deployment else "gone"
                raise ApplicationError(
                    f"deployment {target.deployment_id} is {status}, not ACTIVE: only the ACTIVE one scales",
                    type="NotScalable",
                    non_retryable=True,
                )
            if deployment.deploy_request is None or deployment.image_ref is None:
                raise ApplicationError(
                    f"deployment {target.deployment_id} keeps no deploy request: redeploy it instead",
                    type="NotScalable",
                    non_retryable=True,
                )
            request = DeployRequest.model_validate(deployment.deploy_request)
            image = deployment.image_ref
            rows = list(
                await session.scalars(
                    select(Replica).where(
                        Replica.deployment_id == target.deployment_id, Replica.state.in_(LIVE_REPLICA_STATES)
                    )
                )
            )
            node_ids = {row.node for row in rows} - {LOCAL_NODE}
            nodes = {
                node.id: NodeRef(node_id=node.id, address=node.address)
                for node in await session.scalars(select(Node).where(Node.id.in_(node_ids)))
            }
            nodes[LOCAL_NODE] = NodeRef()
        # A replica on a node removed meanwhile is not running any more.
        replicas = [await self._observed(row, nodes[row.node]) for row in rows if row.node in nodes]
        return ScaleState(request=request, image=image, replicas=[r for r in replicas if r is not None])

    async def _observed(self, row: Replica, node: NodeRef) -> LiveReplica | None:
        """The replica as its agent reports it now (its address may have changed since it was
        recorded); None when the agent no longer has it."""
        try:
            async with self._agents.agent_for(node) as agent:
                status = await agent.replica(row.id)
        except AgentCallError as exc:
            raise ApplicationError(
                f"the agent of replica {row.id} ({row.node}) did not answer: {exc}"
            ) from None
        if status is None:
            return None
        return LiveReplica(
            replica_id=row.id, node=node, address=status.address, container_id=status.container_id
        )

    @activity.defn
    async def place_added_replicas(self, request: PlacementRequest) -> Placement:
        """Like place_replicas, but the deployment's own running replicas count: the added ones spread
        beside them and the resources the kept ones reserve stay reserved. place_replicas leaves out
        the replicas of `deployment_id` (a deploy replaces them all); no deployment has the empty id."""
        return await self._nodes.place_replicas(request.model_copy(update={"deployment_id": ""}))

    @activity.defn
    async def set_replica_rows(self, rows: ReplicaRows) -> None:
        """Idempotent: the replicas' recorded state (`removed` as a scale down takes them out of the
        route, `running` again when it is undone)."""
        async with self.db.transaction() as session:
            await session.execute(
                update(Replica)
                .where(Replica.deployment_id == rows.deployment_id, Replica.id.in_(rows.replica_ids))
                .values(state=rows.state)
                .execution_options(synchronize_session=False)
            )

    @activity.defn
    async def record_scale(self, target: ScaleTarget) -> None:
        """The deployment runs `replicas` replicas now: its configuration snapshot and deploy request
        say so (a rollback to it, or a scale after this one, starts from there). Idempotent."""
        async with self.db.transaction() as session:
            deployment = await session.get(Deployment, target.deployment_id, with_for_update=True)
            if deployment is None:
                raise LookupError(f"deployment {target.deployment_id} does not exist")
            deployment.config = {**deployment.config, "replicas": target.replicas}
            if deployment.deploy_request is not None:
                deployment.deploy_request = {**deployment.deploy_request, "replicas": target.replicas}
            deployment.message = f"scaled to {target.replicas} replica{'s' if target.replicas != 1 else ''}"
