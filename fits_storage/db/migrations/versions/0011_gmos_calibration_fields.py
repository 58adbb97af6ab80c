"""gmos calibration fields: elevation, rotator angle, nod count and pixels, overscan state

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# NULL on existing rows until reingest_headers recomputes them from the stored header text.
COLUMNS = (
    ("elevation", sa.Float()),
    ("cass_rotator_pa", sa.Float()),
    ("nod_count", sa.Integer()),
    ("nod_pixels", sa.Integer()),
    ("overscan_trimmed", sa.Boolean()),
    ("overscan_subtracted", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("header", schema=None) as batch_op:
        for name, type_ in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("header", schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
