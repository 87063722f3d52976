"""deployment commit

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("commit_sha", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("commit_message", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("commit_author", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("commit_author")
        batch_op.drop_column("commit_message")
        batch_op.drop_column("commit_sha")
