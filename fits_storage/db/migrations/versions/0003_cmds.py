"""ingestqueue.complete: the producer wrote the file atomically, so it is never deferred

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingestqueue", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("complete", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("ingestqueue", schema=None) as batch_op:
        batch_op.drop_column("complete")
