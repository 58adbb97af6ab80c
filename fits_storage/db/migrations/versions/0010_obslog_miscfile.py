"""summit files: the obslog and miscfile tables

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "obslog",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("diskfile_id", BIGINT, nullable=False),
        sa.Column("date", sa.Date(), nullable=True),
        sa.Column("program_id", sa.String(length=80), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("entrytime", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["diskfile_id"], ["diskfile.id"], name=op.f("fk_obslog_diskfile_id_diskfile")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_obslog")),
        sa.UniqueConstraint("diskfile_id", name=op.f("uq_obslog_diskfile_id")),
    )
    op.create_index(op.f("ix_obslog_date"), "obslog", ["date"])
    op.create_index(op.f("ix_obslog_program_id"), "obslog", ["program_id"])
    op.create_table(
        "miscfile",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("diskfile_id", BIGINT, nullable=False),
        sa.Column("release", sa.DateTime(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("program_id", sa.String(length=80), nullable=True),
        sa.Column("original_name", sa.Text(), nullable=True),
        sa.Column("meta_md5", sa.String(length=32), nullable=False),
        sa.Column("entrytime", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["diskfile_id"], ["diskfile.id"], name=op.f("fk_miscfile_diskfile_id_diskfile")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_miscfile")),
        sa.UniqueConstraint("diskfile_id", name=op.f("uq_miscfile_diskfile_id")),
    )
    op.create_index(op.f("ix_miscfile_program_id"), "miscfile", ["program_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_miscfile_program_id"), table_name="miscfile")
    op.drop_table("miscfile")
    op.drop_index(op.f("ix_obslog_program_id"), table_name="obslog")
    op.drop_index(op.f("ix_obslog_date"), table_name="obslog")
    op.drop_table("obslog")
