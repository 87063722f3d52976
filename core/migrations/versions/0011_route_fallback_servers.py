"""route fallback servers: the previous deployment's replicas during a release's stability window

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 11:50:00

`routes.fallback_servers` (JSON list, not null, empty by default) are the servers Traefik falls back on
while none of the route's own servers can answer: the previous deployment's replicas, kept running
through the stability window of the release the route points at. Stored with the route so that a
restart of the API or the worker in the window keeps serving the same way. Routes recorded before
this revision have none.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fallback_servers", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.drop_column("fallback_servers")
