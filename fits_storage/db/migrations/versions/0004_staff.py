"""staff accounts and audit; partial indexes that keep the status page's counts cheap

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 03:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

QUEUES = ("calcachequeue", "exportqueue", "ingestqueue", "previewqueue", "uploadqueue")


def _where(condition: str) -> dict:
    clause = sa.text(condition)
    return {"sqlite_where": clause, "postgresql_where": clause}


def upgrade() -> None:
    op.create_table(
        "staffuser",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("password_changed", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staffuser")),
        sa.UniqueConstraint("username", name=op.f("uq_staffuser_username")),
    )
    op.create_table(
        "staffaudit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staffaudit")),
    )
    op.create_index(op.f("ix_staffaudit_at"), "staffaudit", ["at"])
    for table in QUEUES:
        op.create_index(
            f"ix_{table}_failed_at", table, ["failed_at", "id"], **_where("status = 'failed'")
        )
        op.create_index(
            f"ix_{table}_waiting_added", table, ["added"], **_where("status = 'waiting'")
        )


def downgrade() -> None:
    for table in QUEUES:
        op.drop_index(f"ix_{table}_waiting_added", table_name=table)
        op.drop_index(f"ix_{table}_failed_at", table_name=table)
    op.drop_index(op.f("ix_staffaudit_at"), table_name="staffaudit")
    op.drop_table("staffaudit")
    op.drop_table("staffuser")
