"""calcache: the calcache and calcachestamp tables, ix_diskfile_entrytime

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "calcache",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("obs_hid", BIGINT, nullable=False),
        sa.Column("cal_hid", BIGINT, nullable=False),
        sa.Column("caltype", sa.String(length=40), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["obs_hid"], ["header.id"], name=op.f("fk_calcache_obs_hid_header")
        ),
        sa.ForeignKeyConstraint(
            ["cal_hid"], ["header.id"], name=op.f("fk_calcache_cal_hid_header")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calcache")),
    )
    op.create_index(op.f("ix_calcache_obs_hid"), "calcache", ["obs_hid"])
    op.create_index(op.f("ix_calcache_cal_hid"), "calcache", ["cal_hid"])
    op.create_index("ix_diskfile_entrytime", "diskfile", ["entrytime"])
    op.create_table(
        "calcachestamp",
        sa.Column("obs_hid", BIGINT, nullable=False),
        sa.Column("computed", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["obs_hid"], ["header.id"], name=op.f("fk_calcachestamp_obs_hid_header")
        ),
        sa.PrimaryKeyConstraint("obs_hid", name=op.f("pk_calcachestamp")),
    )


def downgrade() -> None:
    op.drop_table("calcachestamp")
    op.drop_index("ix_diskfile_entrytime", table_name="diskfile")
    op.drop_index(op.f("ix_calcache_cal_hid"), table_name="calcache")
    op.drop_index(op.f("ix_calcache_obs_hid"), table_name="calcache")
    op.drop_table("calcache")
