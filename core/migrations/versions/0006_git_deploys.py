"""git deploys: webhook secrets and deliveries, watch patterns, previews, variables

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 21:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_secret", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("previews_enabled", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column(
                "preview_base_environment", sa.String(length=63), server_default="production", nullable=False
            )
        )
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pull_request", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("base_environment_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            "fk_environments_base_environment_id_environments",
            "environments",
            ["base_environment_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("watch_patterns", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("previews", sa.Boolean(), server_default="1", nullable=False))
    op.execute("UPDATE services SET watch_patterns = '[]'")
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.alter_column("watch_patterns", existing_type=sa.JSON(), nullable=False)

    op.create_table(
        "variables",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("service_id", sa.String(length=32), nullable=False),
        sa.Column("environment_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["environment_id"], ["environments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("service_id", "environment_id", "name"),
    )
    op.create_index(op.f("ix_variables_service_id"), "variables", ["service_id"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=True),
        sa.Column("delivery_id", sa.String(length=255), nullable=True),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deployment_ids", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "provider", "dedupe_key"),
    )
    op.create_index(
        op.f("ix_webhook_deliveries_project_id"), "webhook_deliveries", ["project_id"], unique=False
    )
    op.create_index(
        op.f("ix_webhook_deliveries_received_at"), "webhook_deliveries", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_deliveries_received_at"), table_name="webhook_deliveries")
    op.drop_index(op.f("ix_webhook_deliveries_project_id"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index(op.f("ix_variables_service_id"), table_name="variables")
    op.drop_table("variables")
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("previews")
        batch_op.drop_column("watch_patterns")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_constraint("fk_environments_base_environment_id_environments", type_="foreignkey")
        batch_op.drop_column("base_environment_id")
        batch_op.drop_column("pull_request")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("preview_base_environment")
        batch_op.drop_column("previews_enabled")
        batch_op.drop_column("webhook_secret")
