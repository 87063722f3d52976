"""deployment release request: what a deployment's replicas run, kept for scaling in place

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 08:30:00

`deployments.release_request` (JSON, nullable) keeps the DeployRequest a deployment was released with
(its variables sealed as they were then), so that a scale adds replicas that run exactly what the
others run. Deployments recorded before this revision have none: scaling them releases them again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("release_request", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("release_request")
