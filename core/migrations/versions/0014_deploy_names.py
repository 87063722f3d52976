"""deploy names: one word per concept

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 19:00:00

A deployment is deployed, and an earlier one is redeployed: `deployments.release_request` becomes
`deploy_request` (it holds a DeployRequest), and the `release_of` key of a redeployment's source
(in `source` and in the request's) becomes `redeploy_of`.
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _renamed(source: Any, old: str, new: str) -> Any:
    if isinstance(source, dict) and old in source:
        return {(new if key == old else key): value for key, value in source.items()}
    return source


def _rewrite(request_column: str, old: str, new: str) -> None:
    deployments = sa.table(
        "deployments",
        sa.column("id", sa.String),
        sa.column("source", sa.JSON),
        sa.column(request_column, sa.JSON),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(deployments.c.id, deployments.c.source, deployments.c[request_column]).where(
            sa.cast(deployments.c.source, sa.Text).like(f"%{old}%")
        )
    ).all()
    for deployment_id, source, request in rows:
        if isinstance(source, str):  # a driver that hands JSON back as text
            source = json.loads(source)
        if isinstance(request, str):
            request = json.loads(request)
        values: dict[str, Any] = {"source": _renamed(source, old, new)}
        if isinstance(request, dict):
            values[request_column] = {**request, "source": _renamed(request.get("source"), old, new)}
        bind.execute(deployments.update().where(deployments.c.id == deployment_id).values(**values))


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.alter_column("release_request", new_column_name="deploy_request")
    _rewrite("deploy_request", "release_of", "redeploy_of")


def downgrade() -> None:
    _rewrite("deploy_request", "redeploy_of", "release_of")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.alter_column("deploy_request", new_column_name="release_request")
