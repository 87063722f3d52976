"""node pools on Proxmox: pools, their guests, and join tokens reserved for a node id

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12 10:00:00

`join_tokens.reserved_node_id` (nullable): a pool's guest enrolls as the node id it was named and
tagged with before it existed; tokens made by POST /v1/nodes/join-tokens leave it empty.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_pools",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("min_size", sa.Integer(), nullable=False),
        sa.Column("max_size", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("delete_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # Names are unique among current pools only: a removed pool's name can be used again.
    op.create_index(
        "uq_node_pools_current_name",
        "node_pools",
        ["name"],
        unique=True,
        sqlite_where=sa.text("removed_at IS NULL"),
        postgresql_where=sa.text("removed_at IS NULL"),
    )
    op.create_table(
        "pool_nodes",
        sa.Column("node_id", sa.String(length=32), nullable=False),
        sa.Column("pool_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("pve_node", sa.String(length=63), nullable=True),
        sa.Column("vmid", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["pool_id"], ["node_pools.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("node_id"),
    )
    op.create_index(op.f("ix_pool_nodes_pool_id"), "pool_nodes", ["pool_id"], unique=False)
    with op.batch_alter_table("join_tokens") as batch:
        batch.add_column(sa.Column("reserved_node_id", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_join_tokens_reserved_node_id"), ["reserved_node_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("join_tokens") as batch:
        batch.drop_index(batch.f("ix_join_tokens_reserved_node_id"))
        batch.drop_column("reserved_node_id")
    op.drop_index(op.f("ix_pool_nodes_pool_id"), table_name="pool_nodes")
    op.drop_table("pool_nodes")
    op.drop_index("uq_node_pools_current_name", table_name="node_pools")
    op.drop_table("node_pools")
