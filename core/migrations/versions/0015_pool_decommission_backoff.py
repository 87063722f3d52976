"""pool decommission backoff: decommissions undone are counted per guest

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 19:30:00

`pool_nodes.decommission_failures` (how many decommissions of the guest failed before it stopped and were
undone: its node uncordoned, READY again) and `decommission_failed_at` (the last one): the pool waits
before it tries that guest again (core/pools.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pool_nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("decommission_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("decommission_failed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pool_nodes", schema=None) as batch_op:
        batch_op.drop_column("decommission_failed_at")
        batch_op.drop_column("decommission_failures")
