"""The control-plane database on both backends: migrations, and the activities that write deployment state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    MetaData,
    String,
    column,
    func,
    inspect,
    select,
    table,
)
from temporalio.testing import ActivityEnvironment

from activities.contracts import ReplicaSet, RouteKey, RouteSpec, StatusUpdate
from activities.deployments import DeploymentActivities
from activities.routing import RoutingActivities
from core.contracts import DeploymentStatus, ReplicaState, ReplicaStatus
from core.db import Database, alembic_config, migrate_async
from core.models import AuditEvent, Base, Deployment, Environment, Project, Replica, Route, Service, new_id
from core.settings import load_settings

S = DeploymentStatus
TABLES = {
    "alembic_version",
    "audit_events",
    "projects",
    "environments",
    "services",
    "deployments",
    "routes",
    "replicas",
    "source_uploads",
    "variables",
    "webhook_deliveries",
    "nodes",
    "join_tokens",
    "revoked_certificates",
    "node_pools",
    "pool_nodes",
    "users",
    "invitations",
    "api_tokens",
    "memberships",
    "autoscaling",
    "scaling_events",
}


async def seed(
    db: Database, service: str = "web", environments: tuple[str, ...] = ("production",)
) -> dict[str, str]:
    """A project with a service and its environments; returns their ids by name."""
    async with db.transaction() as session:
        project = Project(id=new_id("prj"), name=f"shop-{service}")
        session.add(project)
        await session.flush()
        svc = Service(
            id=new_id("svc"),
            project_id=project.id,
            name=service,
            slug=f"{service}-{project.name}",
            image="127.0.0.1:5000/web:1",
        )
        envs = [Environment(id=new_id("env"), project_id=project.id, name=name) for name in environments]
        session.add_all([svc, *envs])
    return {"project": project.id, "service": svc.id, **{e.name: e.id for e in envs}}


async def add_deployment(db: Database, ids: dict[str, str], status: S, env: str = "production") -> str:
    deployment_id = new_id("dep")
    async with db.transaction() as session:
        session.add(
            Deployment(
                id=deployment_id,
                service_id=ids["service"],
                environment_id=ids[env],
                status=status.value,
                image="127.0.0.1:5000/web:1",
                workflow_id=f"deploy/{ids['service']}/{ids[env]}/{deployment_id}",
            )
        )
    return deployment_id


async def load(db: Database, model: type[Any], key: Any) -> Any:
    async with db.session() as session:
        return await session.get(model, key)


async def statuses(db: Database, *deployment_ids: str) -> list[str]:
    return [(await load(db, Deployment, d)).status for d in deployment_ids]


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# --- migrations ----------------------------------------------------------------------------------


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def test_migrations_reach_head_and_are_idempotent(database: Database) -> None:
    await migrate_async(database.url)
    await migrate_async(database.url)
    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    async with database.engine.connect() as connection:
        assert await connection.run_sync(_current_revision) == head
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert tables == TABLES


def _diff(metadata: MetaData) -> Any:
    def compare(connection: Connection) -> Any:
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)

    return compare


async def test_models_match_migrations(database: Database) -> None:
    """`alembic check`: a model change without a migration fails here."""
    async with database.engine.connect() as connection:
        assert await connection.run_sync(_diff(Base.metadata)) == []


async def test_a_model_change_without_a_migration_is_detected(database: Database) -> None:
    changed = MetaData()
    for model_table in Base.metadata.sorted_tables:
        model_table.to_metadata(changed)
    changed.tables["services"].append_column(Column("icon_url", String(255), nullable=True))
    async with database.engine.connect() as connection:
        diff = await connection.run_sync(_diff(changed))
    assert [(op[0], op[2], op[3].name) for op in diff] == [("add_column", "services", "icon_url")]


async def test_the_deploy_names_migration_renames_the_request_and_the_redeployed_source(
    database: Database,
) -> None:
    """0014: `release_request` → `deploy_request`, a source's `release_of` → `redeploy_of`, both ways."""
    ids = await seed(database)
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0013")
    old_source = {"kind": "image", "credential": False, "release_of": "dep_earlier"}
    legacy = table(
        "deployments",
        column("id", String),
        column("service_id", String),
        column("environment_id", String),
        column("status", String),
        column("source", JSON),
        column("config", JSON),
        column("workflow_id", String),
        column("release_request", JSON),
        column("created_at", DateTime),
        column("updated_at", DateTime),
    )
    now = datetime.now(UTC).replace(tzinfo=None)  # the columns' own form: UTC without a zone
    async with database.engine.begin() as connection:
        await connection.execute(
            legacy.insert().values(
                id="dep_redeployed",
                service_id=ids["service"],
                environment_id=ids["production"],
                status="ACTIVE",
                source=old_source,
                config={},
                workflow_id="deploy/x/y/dep_redeployed",
                release_request={"deployment_id": "dep_redeployed", "source": old_source},
                created_at=now,
                updated_at=now,
            )
        )
    await migrate_async(database.url)
    deployment = await load(database, Deployment, "dep_redeployed")
    assert deployment.source == {"kind": "image", "credential": False, "redeploy_of": "dep_earlier"}
    assert deployment.deploy_request == {"deployment_id": "dep_redeployed", "source": deployment.source}
    await asyncio.to_thread(command.downgrade, config, "0013")
    async with database.engine.connect() as connection:
        source, request = (await connection.execute(select(legacy.c.source, legacy.c.release_request))).one()
    assert source == old_source and request["source"] == old_source
    await migrate_async(database.url)


# --- deployment status ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("initial", "change", "expected", "finished"),
    [
        pytest.param(
            S.QUEUED, StatusUpdate(deployment_id="", status=S.BUILDING), S.BUILDING, False, id="advance"
        ),
        pytest.param(
            S.DEPLOYING,
            StatusUpdate(
                deployment_id="", status=S.FAILED, failed_step="health", message="replica 0 never healthy"
            ),
            S.FAILED,
            True,
            id="fail",
        ),
        pytest.param(
            S.FAILED, StatusUpdate(deployment_id="", status=S.SUPERSEDED), S.FAILED, True, id="failed-stays"
        ),
        pytest.param(
            S.ACTIVE, StatusUpdate(deployment_id="", status=S.FAILED), S.ACTIVE, True, id="active-stays"
        ),
        pytest.param(
            S.REMOVED, StatusUpdate(deployment_id="", status=S.ACTIVE), S.REMOVED, True, id="removed-stays"
        ),
        pytest.param(
            S.CANCELLED,
            StatusUpdate(deployment_id="", status=S.QUEUED),
            S.CANCELLED,
            True,
            id="cancelled-stays",
        ),
    ],
)
async def test_set_deployment_status(
    database: Database, initial: S, change: StatusUpdate, expected: S, finished: bool
) -> None:
    ids = await seed(database)
    deployment_id = await add_deployment(database, ids, initial)
    change = change.model_copy(update={"deployment_id": deployment_id})
    activities = DeploymentActivities(database)
    before = await load(database, Deployment, deployment_id)

    await ActivityEnvironment().run(activities.set_deployment_status, change)
    await ActivityEnvironment().run(activities.set_deployment_status, change)

    after = await load(database, Deployment, deployment_id)
    assert after.status == expected
    if expected == initial:
        assert (after.message, after.failed_step, after.finished_at) == (None, None, before.finished_at)
    else:
        assert (after.message, after.failed_step) == (change.message, change.failed_step)
        assert (after.finished_at is not None) == finished
    if after.finished_at is not None:
        assert_utc(after.finished_at)


async def test_repeated_final_status_keeps_its_first_finish_time(database: Database) -> None:
    ids = await seed(database)
    deployment_id = await add_deployment(database, ids, S.BUILDING)
    activities = DeploymentActivities(database)
    fail = StatusUpdate(deployment_id=deployment_id, status=S.FAILED, failed_step="build", message="exit 1")
    await ActivityEnvironment().run(activities.set_deployment_status, fail)
    first = await load(database, Deployment, deployment_id)
    await ActivityEnvironment().run(
        activities.set_deployment_status, fail.model_copy(update={"image_digest": "sha256:" + "c" * 64})
    )
    second = await load(database, Deployment, deployment_id)
    assert second.finished_at == first.finished_at
    assert (second.status, second.failed_step, second.image_digest) == (
        "FAILED",
        "build",
        "sha256:" + "c" * 64,
    )


async def test_a_status_update_records_the_commit_built_and_a_later_one_keeps_it(database: Database) -> None:
    ids = await seed(database)
    deployment_id = await add_deployment(database, ids, S.QUEUED)
    activities = DeploymentActivities(database)
    building = StatusUpdate(
        deployment_id=deployment_id,
        status=S.BUILDING,
        builder="planner",
        commit_sha="a" * 40,
        commit_message="Fix the checkout page",
        commit_author="Ada Lovelace <ada@example.com>",
    )
    await ActivityEnvironment().run(activities.set_deployment_status, building)
    await ActivityEnvironment().run(
        activities.set_deployment_status, StatusUpdate(deployment_id=deployment_id, status=S.DEPLOYING)
    )
    after = await load(database, Deployment, deployment_id)
    assert (after.status, after.builder, after.commit_sha, after.commit_message, after.commit_author) == (
        "DEPLOYING",
        "planner",
        "a" * 40,
        "Fix the checkout page",
        "Ada Lovelace <ada@example.com>",
    )


async def test_set_status_of_unknown_deployment(database: Database) -> None:
    change = StatusUpdate(deployment_id="dep_missing", status=S.BUILDING)
    with pytest.raises(LookupError, match="deployment dep_missing does not exist"):
        await ActivityEnvironment().run(DeploymentActivities(database).set_deployment_status, change)


# --- activation and replicas ---------------------------------------------------------------------


def replica_set(deployment_id: str, *replicas: tuple[str, ReplicaState, str | None]) -> ReplicaSet:
    return ReplicaSet(
        deployment_id=deployment_id,
        node="node-1",
        replicas=[
            ReplicaStatus(replica_id=rid, state=state, address=address, container_id=f"c-{rid}")
            for rid, state, address in replicas
        ],
    )


async def replica_states(db: Database) -> dict[str, str]:
    async with db.session() as session:
        return {r.id: r.state for r in await session.scalars(select(Replica))}


async def active_count(db: Database, service_id: str, environment_id: str) -> int:
    async with db.session() as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    Deployment.service_id == service_id,
                    Deployment.environment_id == environment_id,
                    Deployment.status == S.ACTIVE.value,
                )
            )
            or 0
        )


async def test_activate_leaves_exactly_one_active(database: Database) -> None:
    ids = await seed(database, environments=("production", "staging"))
    neighbour = await seed(database, service="api")
    old = await add_deployment(database, ids, S.ACTIVE)
    failed = await add_deployment(database, ids, S.FAILED)
    new = await add_deployment(database, ids, S.DEPLOYING)
    staging = await add_deployment(database, ids, S.ACTIVE, env="staging")
    other = await add_deployment(database, neighbour, S.ACTIVE)
    activities = DeploymentActivities(database)
    await activities.record_replicas(replica_set(old, ("old-0", ReplicaState.RUNNING, "127.0.0.1:1")))
    await activities.record_replicas(replica_set(new, ("new-0", ReplicaState.RUNNING, "127.0.0.1:2")))
    await activities.record_replicas(replica_set(other, ("other-0", ReplicaState.RUNNING, "127.0.0.1:3")))

    change = StatusUpdate(deployment_id=new, status=S.ACTIVE, message="serving 1 replica")
    await activities.activate_deployment(change)
    await activities.activate_deployment(change)

    assert await statuses(database, old, failed, new, staging, other) == [
        "REMOVED",
        "FAILED",
        "ACTIVE",
        "ACTIVE",
        "ACTIVE",
    ]
    assert await active_count(database, ids["service"], ids["production"]) == 1
    assert await replica_states(database) == {"old-0": "removed", "new-0": "running", "other-0": "running"}
    removed, active = await load(database, Deployment, old), await load(database, Deployment, new)
    assert_utc(removed.finished_at)
    assert_utc(active.finished_at)
    assert (active.message, active.failed_step) == ("serving 1 replica", None)

    newer = await add_deployment(database, ids, S.DEPLOYING)
    await activities.activate_deployment(StatusUpdate(deployment_id=newer, status=S.ACTIVE))
    assert await statuses(database, old, new, newer) == ["REMOVED", "REMOVED", "ACTIVE"]
    assert await active_count(database, ids["service"], ids["production"]) == 1


async def test_activate_unknown_deployment(database: Database) -> None:
    with pytest.raises(LookupError, match="deployment dep_missing does not exist"):
        await DeploymentActivities(database).activate_deployment(
            StatusUpdate(deployment_id="dep_missing", status=S.ACTIVE)
        )


async def test_record_replicas_upserts(database: Database) -> None:
    ids = await seed(database)
    deployment_id = await add_deployment(database, ids, S.DEPLOYING)
    activities = DeploymentActivities(database)
    await activities.record_replicas(
        replica_set(
            deployment_id,
            ("r-0", ReplicaState.CREATED, None),
            ("r-1", ReplicaState.RUNNING, "127.0.0.1:32001"),
        )
    )
    first = await load(database, Replica, "r-0")
    await activities.record_replicas(
        replica_set(deployment_id, ("r-0", ReplicaState.RUNNING, "127.0.0.1:32000"))
    )
    await activities.record_replicas(
        replica_set(deployment_id, ("r-0", ReplicaState.RUNNING, "127.0.0.1:32000"))
    )

    async with database.session() as session:
        rows = {
            r.id: (r.deployment_id, r.node, r.address, r.container_id, r.state)
            for r in await session.scalars(select(Replica))
        }
    assert rows == {
        "r-0": (deployment_id, "node-1", "127.0.0.1:32000", "c-r-0", "running"),
        "r-1": (deployment_id, "node-1", "127.0.0.1:32001", "c-r-1", "running"),
    }
    updated = await load(database, Replica, "r-0")
    assert_utc(updated.updated_at)
    assert updated.updated_at >= first.updated_at


async def test_mark_replicas_removed_spares_the_active_deployment(database: Database) -> None:
    ids = await seed(database)
    neighbour = await seed(database, service="api")
    active = await add_deployment(database, ids, S.ACTIVE)
    superseded = await add_deployment(database, ids, S.SUPERSEDED)
    failed = await add_deployment(database, ids, S.FAILED)
    other = await add_deployment(database, neighbour, S.FAILED)
    activities = DeploymentActivities(database)
    for deployment_id, replica in ((active, "a-0"), (superseded, "s-0"), (failed, "f-0"), (other, "o-0")):
        await activities.record_replicas(replica_set(deployment_id, (replica, ReplicaState.RUNNING, None)))

    key = RouteKey(service_id=ids["service"], environment_id=ids["production"])
    await activities.mark_replicas_removed(key)
    await activities.mark_replicas_removed(key)

    assert await replica_states(database) == {
        "a-0": "running",
        "s-0": "removed",
        "f-0": "removed",
        "o-0": "running",
    }


# --- routes --------------------------------------------------------------------------------------


async def test_routes_publish_get_unpublish_are_idempotent(database: Database, tmp_path: Path) -> None:
    ids = await seed(database)
    first = await add_deployment(database, ids, S.ACTIVE)
    second = await add_deployment(database, ids, S.DEPLOYING)
    routing = RoutingActivities(database, load_settings(state_dir=tmp_path, database_url=database.url))
    key = RouteKey(service_id=ids["service"], environment_id=ids["production"])
    spec = RouteSpec(
        service_id=ids["service"],
        environment_id=ids["production"],
        hostname="web-production.apps.test",
        deployment_id=first,
        servers=["127.0.0.1:32002", "127.0.0.1:32001"],
    )

    assert await routing.get_route(key) is None
    await routing.publish_route(spec)
    await routing.publish_route(spec)
    assert await routing.get_route(key) == spec.model_copy(
        update={"servers": ["127.0.0.1:32001", "127.0.0.1:32002"]}
    )

    moved = spec.model_copy(update={"deployment_id": second, "servers": ["127.0.0.1:32003"]})
    await routing.publish_route(moved)
    assert await routing.get_route(key) == moved
    async with database.session() as session:
        routes = list(await session.scalars(select(Route)))
    assert len(routes) == 1
    assert_utc(routes[0].updated_at)

    await routing.unpublish_route(key)
    await routing.unpublish_route(key)
    assert await routing.get_route(key) is None


# --- timestamps ----------------------------------------------------------------------------------


async def test_timestamps_come_back_in_utc(database: Database) -> None:
    ids = await seed(database)
    deployment_id = await add_deployment(database, ids, S.QUEUED)
    in_berlin = datetime(2030, 6, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    async with database.transaction() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        deployment.finished_at = in_berlin
        session.add(AuditEvent(actor="admin", action="test.write", target=deployment_id, detail={"n": 1}))

    stored = await load(database, Deployment, deployment_id)
    assert stored.finished_at == datetime(2030, 6, 1, 12, 30, tzinfo=UTC)
    for value in (stored.created_at, stored.updated_at, stored.finished_at):
        assert_utc(value)
    async with database.session() as session:
        event = await session.scalar(select(AuditEvent).where(AuditEvent.target == deployment_id))
        project = await session.get(Project, ids["project"])
    assert event is not None and project is not None
    assert_utc(event.at)
    assert_utc(project.created_at)
    assert event.detail == {"n": 1}
