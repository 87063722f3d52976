"""service slug: the service's part of its hostnames, unique across projects

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 18:27:33.752607
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slug", sa.String(length=63), nullable=True))
    # Existing services keep the hostnames they had: the slug is the service id where names clash.
    op.execute(
        "UPDATE services SET slug = CASE "
        "WHEN (SELECT COUNT(*) FROM services s2 WHERE s2.name = services.name) = 1 THEN name "
        "ELSE name || '-' || substr(id, 5) END"
    )
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.alter_column("slug", existing_type=sa.String(length=63), nullable=False)
        batch_op.create_unique_constraint("uq_services_slug", ["slug"])


def downgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_constraint("uq_services_slug", type_="unique")
        batch_op.drop_column("slug")
