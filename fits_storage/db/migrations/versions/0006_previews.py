"""previews: the preview and previewnote tables, previewqueue.force

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-03 03:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "preview",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("diskfile_id", BIGINT, nullable=False),
        sa.Column("size", sa.String(length=8), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.CheckConstraint("size IN ('full', 'thumb')", name=op.f("ck_preview_size")),
        sa.ForeignKeyConstraint(
            ["diskfile_id"], ["diskfile.id"], name=op.f("fk_preview_diskfile_id_diskfile")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preview")),
        sa.UniqueConstraint("diskfile_id", "size", name=op.f("uq_preview_diskfile_id_size")),
    )
    op.create_index(op.f("ix_preview_diskfile_id"), "preview", ["diskfile_id"])
    op.create_table(
        "previewnote",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("diskfile_id", BIGINT, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["diskfile_id"], ["diskfile.id"], name=op.f("fk_previewnote_diskfile_id_diskfile")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_previewnote")),
        sa.UniqueConstraint("diskfile_id", name=op.f("uq_previewnote_diskfile_id")),
    )
    with op.batch_alter_table("previewqueue", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("force", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("previewqueue", schema=None) as batch_op:
        batch_op.drop_column("force")
    op.drop_table("previewnote")
    op.drop_index(op.f("ix_preview_diskfile_id"), table_name="preview")
    op.drop_table("preview")
