"""calcache: the calcache and calcachestamp tables, ix_diskfile_entrytime (and, until the
descriptors branch lands, the header columns calibration association reads, with
ix_header_calibration)

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-03 07:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# TEMPORARY (branch calib): the descriptors branch adds these; drop them here at merge.
HEADER_COLUMNS = (
    ("types", sa.Text()),
    ("reduction", sa.String(length=40)),
    ("focal_plane_mask", sa.String(length=80)),
    ("mode", sa.String(length=16)),
    ("spectroscopy", sa.Boolean()),
    ("detector_roi_setting", sa.String(length=80)),
    ("detector_readmode", sa.String(length=40)),
    ("detector_gain_setting", sa.String(length=40)),
    ("amp_read_area", sa.Text()),
    ("nod_and_shuffle", sa.Boolean()),
    ("coadds", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("header", schema=None) as batch_op:
        for name, type_ in HEADER_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.create_index(
            "ix_header_calibration",
            ["instrument", "observation_type", "reduction", "ut_datetime"],
        )
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
    with op.batch_alter_table("header", schema=None) as batch_op:
        batch_op.drop_index("ix_header_calibration")
        for name, _type in reversed(HEADER_COLUMNS):
            batch_op.drop_column(name)
