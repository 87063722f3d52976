"""Activities that read and write deployment state in the control-plane database."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy import select, update
from temporalio import activity

from activities.contracts import ReplicaSet, Rollback, RouteKey, StatusUpdate
from core.build_logs import read_build_log
from core.contracts import DeploymentStatus
from core.db import Database
from core.models import Deployment, Replica, utcnow

# What a status update may also record; a field left None keeps its value.
RECORDED_FIELDS = (
    "message",
    "failed_step",
    "image_digest",
    "image_ref",
    "builder",
    "commit_sha",
    "commit_message",
    "commit_author",
)


class DeploymentActivities:
    def __init__(self, db: Database, redis_url: str | None = None) -> None:
        self.db = db
        self.redis_url = redis_url

    @activity.defn
    async def save_build_log(self, deployment_id: str) -> None:
        """Keep the whole build log with the deployment (Redis holds it only for a while)."""
        if self.redis_url is None:
            raise RuntimeError("no Redis configured: build logs cannot be saved")
        redis = Redis.from_url(self.redis_url)
        try:
            lines = await read_build_log(redis, deployment_id)
        finally:
            await redis.aclose()
        async with self.db.transaction() as session:
            deployment = await session.get(Deployment, deployment_id, with_for_update=True)
            if deployment is None:
                raise LookupError(f"deployment {deployment_id} does not exist")
            deployment.build_log = "\n".join(lines)

    @activity.defn
    async def set_deployment_status(self, change: StatusUpdate) -> None:
        """Idempotent. A deployment that reached a final status keeps it, so a late or repeated
        update (say, SUPERSEDED arriving after FAILED) never rewrites history."""
        async with self.db.transaction() as session:
            deployment = await session.get(Deployment, change.deployment_id, with_for_update=True)
            if deployment is None:
                raise LookupError(f"deployment {change.deployment_id} does not exist")
            if DeploymentStatus(deployment.status).is_final and deployment.status != change.status:
                activity.logger.info(
                    "deployment %s is already %s; not setting %s",
                    deployment.id,
                    deployment.status,
                    change.status,
                )
                return
            deployment.status = change.status.value
            for field in RECORDED_FIELDS:
                value = getattr(change, field)
                if value is not None:
                    setattr(deployment, field, value)
            if change.status.is_final and deployment.finished_at is None:
                deployment.finished_at = utcnow()

    @activity.defn
    async def record_replicas(self, replica_set: ReplicaSet) -> None:
        async with self.db.transaction() as session:
            for status in replica_set.replicas:
                replica = await session.get(Replica, status.replica_id)
                if replica is None:
                    replica = Replica(id=status.replica_id, deployment_id=replica_set.deployment_id)
                    session.add(replica)
                replica.node = replica_set.node
                replica.address = status.address
                replica.container_id = status.container_id
                replica.state = status.state.value

    @activity.defn
    async def activate_deployment(self, change: StatusUpdate) -> None:
        """Make this deployment the one ACTIVE deployment of its service and environment; the one it
        replaces becomes REMOVED. Idempotent."""
        async with self.db.transaction() as session:
            deployment = await session.get(Deployment, change.deployment_id, with_for_update=True)
            if deployment is None:
                raise LookupError(f"deployment {change.deployment_id} does not exist")
            others = select(Deployment.id).where(
                Deployment.service_id == deployment.service_id,
                Deployment.environment_id == deployment.environment_id,
                Deployment.id != deployment.id,
            )
            await session.execute(
                update(Deployment)
                .where(Deployment.id.in_(others), Deployment.status == DeploymentStatus.ACTIVE.value)
                .values(status=DeploymentStatus.REMOVED.value, finished_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                update(Replica)
                .where(Replica.deployment_id.in_(others))
                .values(state="removed")
                .execution_options(synchronize_session=False)
            )
            deployment.status = DeploymentStatus.ACTIVE.value
            deployment.message = change.message
            deployment.failed_step = None
            deployment.finished_at = deployment.finished_at or utcnow()

    @activity.defn
    async def roll_back_deployment(self, rollback: Rollback) -> None:
        """Undo activate_deployment: the rolled-back deploy FAILED (although it was ACTIVE: a final
        status is rewritten here, and only here), the one it replaced ACTIVE again with its replicas
        live (they were kept running through the stability window). Idempotent."""
        async with self.db.transaction() as session:
            failed = await session.get(Deployment, rollback.failed_deployment_id, with_for_update=True)
            if failed is None:
                raise LookupError(f"deployment {rollback.failed_deployment_id} does not exist")
            failed.status = DeploymentStatus.FAILED.value
            failed.failed_step = rollback.failed_step
            failed.message = rollback.reason
            failed.finished_at = utcnow()
            if rollback.previous_deployment_id is None:
                return
            previous = await session.get(Deployment, rollback.previous_deployment_id, with_for_update=True)
            if previous is None:
                return
            previous.status = DeploymentStatus.ACTIVE.value
            previous.message = f"serving again: {rollback.failed_deployment_id} was rolled back"
            await session.execute(
                update(Replica)
                .where(Replica.deployment_id == previous.id, Replica.state == "removed")
                .values(state="running")
                .execution_options(synchronize_session=False)
            )

    @activity.defn
    async def mark_replicas_removed(self, key: RouteKey) -> None:
        """After an orphan sweep: every replica of a non-active deployment is gone."""
        async with self.db.transaction() as session:
            inactive = select(Deployment.id).where(
                Deployment.service_id == key.service_id,
                Deployment.environment_id == key.environment_id,
                Deployment.status != DeploymentStatus.ACTIVE.value,
            )
            await session.execute(
                update(Replica)
                .where(Replica.deployment_id.in_(inactive))
                .values(state="removed")
                .execution_options(synchronize_session=False)
            )
