"""fileops: the fileopsqueue (header edits of POST /update_headers) and the updatelog audit

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "fileopsqueue"


def _where(condition: str) -> dict:
    clause = sa.text(condition)
    return {"sqlite_where": clause, "postgresql_where": clause}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sortkey", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("added", sa.DateTime(), nullable=False),
        sa.Column("after", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat", sa.DateTime(), nullable=True),
        sa.Column("failed_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("requester", sa.String(length=255), nullable=False),
        sa.CheckConstraint(
            "status IN ('waiting', 'in_progress', 'failed')", name=op.f(f"ck_{TABLE}_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
    )
    op.create_index(
        f"uq_{TABLE}_waiting",
        TABLE,
        ["filename", "path", "request_id"],
        unique=True,
        **_where("status = 'waiting'"),
    )
    op.create_index(
        f"ix_{TABLE}_claim",
        TABLE,
        ["sortkey", "id"],
        **_where("status = 'waiting' AND after IS NULL"),
    )
    op.create_index(
        f"ix_{TABLE}_deferred",
        TABLE,
        ["after"],
        **_where("status = 'waiting' AND after IS NOT NULL"),
    )
    op.create_index(
        f"uq_{TABLE}_in_progress",
        TABLE,
        ["filename"],
        unique=True,
        **_where("status = 'in_progress'"),
    )
    op.create_index(f"ix_{TABLE}_failed", TABLE, ["filename"], **_where("status = 'failed'"))
    op.create_index(
        f"ix_{TABLE}_failed_at", TABLE, ["failed_at", "id"], **_where("status = 'failed'")
    )
    op.create_index(f"ix_{TABLE}_waiting_added", TABLE, ["added"], **_where("status = 'waiting'"))
    op.create_table(
        "updatelog",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("requester", sa.String(length=255), nullable=False),
        sa.Column("requested", sa.DateTime(), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("applied", sa.DateTime(), nullable=True),
        sa.Column("old_values", sa.Text(), nullable=False),
        sa.Column("new_values", sa.Text(), nullable=False),
        sa.Column("md5_before", sa.String(length=32), nullable=False),
        sa.Column("md5_after", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_updatelog")),
        sa.UniqueConstraint("request_id", name=op.f("uq_updatelog_request_id")),
    )
    op.create_index(op.f("ix_updatelog_filename"), "updatelog", ["filename"])


def downgrade() -> None:
    op.drop_index(op.f("ix_updatelog_filename"), table_name="updatelog")
    op.drop_table("updatelog")
    for name in ("waiting_added", "failed_at", "failed", "deferred", "claim"):
        op.drop_index(f"ix_{TABLE}_{name}", table_name=TABLE)
    for name in ("in_progress", "waiting"):
        op.drop_index(f"uq_{TABLE}_{name}", table_name=TABLE)
    op.drop_table(TABLE)
