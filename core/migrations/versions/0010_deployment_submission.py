"""deployment release request and submission: the outbox of deploys to Temporal

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:10:00

`deployments.release_request` (JSON, nullable) keeps the DeployRequest a deployment is released with
(its variables sealed as they were then): the outbox hands it to Temporal again after a crash, and a
scale in place starts more replicas of exactly it. `deployments.submitted_at` (nullable) is when the
deployment left the outbox: Temporal confirmed it has it, refused it, or a newer deployment overtook
it first. Deployments recorded before this revision were handed over by the API that recorded them:
they count as submitted, and have no request (scaling them releases them again).
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("release_request", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE deployments SET submitted_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("submitted_at")
        batch_op.drop_column("release_request")
