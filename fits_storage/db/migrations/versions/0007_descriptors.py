"""descriptors: the header columns computed by fits_storage.descriptors, ix_header_calibration

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    ("types", sa.Text()),
    ("reduction", sa.String(length=40)),
    ("site", sa.String(length=20)),
    ("local_time", sa.Time()),
    ("coadds", sa.Integer()),
    ("focal_plane_mask", sa.String(length=80)),
    ("wavelength_band", sa.String(length=20)),
    ("mode", sa.String(length=20)),
    ("spectroscopy", sa.Boolean()),
    ("detector_roi_setting", sa.String(length=40)),
    ("detector_readmode", sa.String(length=40)),
    ("detector_gain_setting", sa.String(length=20)),
    ("detector_welldepth", sa.String(length=20)),
    ("amp_read_area", sa.Text()),
    ("nod_and_shuffle", sa.Boolean()),
    ("adaptive_optics", sa.Boolean()),
    ("laser_guide_star", sa.Boolean()),
    ("raw_iq", sa.String(length=8)),
    ("raw_cc", sa.String(length=8)),
    ("raw_wv", sa.String(length=8)),
    ("raw_bg", sa.String(length=8)),
)


def upgrade() -> None:
    with op.batch_alter_table("header", schema=None) as batch_op:
        for name, type_ in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    op.create_index(op.f("ix_header_reduction"), "header", ["reduction"])
    op.create_index(
        "ix_header_calibration",
        "header",
        ["instrument", "observation_type", "reduction", "ut_datetime"],
    )


def downgrade() -> None:
    op.drop_index("ix_header_calibration", table_name="header")
    op.drop_index(op.f("ix_header_reduction"), table_name="header")
    with op.batch_alter_table("header", schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
