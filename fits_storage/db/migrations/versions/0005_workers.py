"""queueworker: the live workers and their counters, for /health and /metrics

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queueworker",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("heartbeat", sa.DateTime(), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=False),
        sa.Column("stopped", sa.DateTime(), nullable=True),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("retried", sa.Integer(), nullable=False),
        sa.Column("seconds_total", sa.Float(), nullable=False),
        sa.Column("buckets", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_queueworker"),
    )
    op.create_index("ix_queueworker_queue", "queueworker", ["queue", "stopped"])


def downgrade() -> None:
    op.drop_index("ix_queueworker_queue", table_name="queueworker")
    op.drop_table("queueworker")
