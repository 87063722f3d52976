"""service placement and rollout settings; a DOWN node remembers the state it comes back to

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("cpu_millis", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("memory_mb", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("constraints", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("placement_strategy", sa.String(length=16), nullable=False, server_default="spread")
        )
        batch.add_column(sa.Column("overlap_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("draining_seconds", sa.Integer(), nullable=True))
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("state_before_down", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("state_before_down")
    with op.batch_alter_table("services") as batch:
        for column in (
            "draining_seconds",
            "overlap_seconds",
            "placement_strategy",
            "constraints",
            "memory_mb",
            "cpu_millis",
        ):
            batch.drop_column(column)
