"""audit context: the project, the address and the result of each event

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 16:30:00

`audit_events.project_id` (nullable, indexed: GET /v1/audit?project_id= for a project's owners),
`address` (where the request came from) and `result` (`ok`, or `refused` for a write the caller was not
allowed to make). Events recorded before this revision have no project or address, and `ok`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("result", sa.String(length=16), nullable=False, server_default="ok"))
        batch_op.create_index("ix_audit_events_project_id", ["project_id"])


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_project_id")
        batch_op.drop_column("result")
        batch_op.drop_column("address")
        batch_op.drop_column("project_id")
