"""deployment submission outbox: the request kept until Temporal confirms it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:10:00

`deployments.deploy_request` (JSON, nullable) holds the DeployRequest until Temporal confirms it has
the deployment; `deployments.submitted_at` (nullable) is when it did. Deployments recorded before
this revision were handed over by the API that recorded them: they count as submitted.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deploy_request", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE deployments SET submitted_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("submitted_at")
        batch_op.drop_column("deploy_request")
