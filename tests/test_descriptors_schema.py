"""The ``header`` columns of migration 0007 agree with the ORM, and rows round-trip on both
databases (the calibration rules query these columns by name)."""

from __future__ import annotations

from datetime import datetime, time

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session

from fits_storage.orm import DiskFile, File, Header
from fits_storage.orm.base import Base

CONTRACT = {
    "types": "TEXT",
    "reduction": "VARCHAR(40)",
    "site": "VARCHAR(20)",
    "local_time": "TIME",
    "coadds": "INTEGER",
    "focal_plane_mask": "VARCHAR(80)",
    "wavelength_band": "VARCHAR(20)",
    "mode": "VARCHAR(20)",
    "spectroscopy": "BOOLEAN",
    "detector_roi_setting": "VARCHAR(40)",
    "detector_readmode": "VARCHAR(40)",
    "detector_gain_setting": "VARCHAR(20)",
    "detector_welldepth": "VARCHAR(20)",
    "amp_read_area": "TEXT",
    "nod_and_shuffle": "BOOLEAN",
    "adaptive_optics": "BOOLEAN",
    "laser_guide_star": "BOOLEAN",
    "raw_iq": "VARCHAR(8)",
    "raw_cc": "VARCHAR(8)",
    "raw_wv": "VARCHAR(8)",
    "raw_bg": "VARCHAR(8)",
}


def test_migration_matches_the_orm_for_header(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    header_diff = [d for d in diff if "header" in repr(d)]
    assert header_diff == []


def test_contract_columns_and_calibration_index(engine: Engine) -> None:
    inspector = inspect(engine)
    columns = {c["name"]: str(c["type"]).upper() for c in inspector.get_columns("header")}
    for name, kind in CONTRACT.items():
        # PostgreSQL spells VARCHAR as VARCHAR, SQLite keeps the declared type
        assert columns[name].replace("CHARACTER VARYING", "VARCHAR").startswith(kind), name
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("header")}
    assert indexes["ix_header_calibration"] == [
        "instrument",
        "observation_type",
        "reduction",
        "ut_datetime",
    ]
    assert indexes["ix_header_reduction"] == ["reduction"]


def test_new_columns_round_trip(session: Session) -> None:
    file = File(name="N20251123S0042.fits")
    session.add(file)
    session.flush()
    diskfile = DiskFile(
        file_id=file.id,
        filename=file.name,
        path="",
        file_size=1,
        file_md5="0" * 32,
        lastmod=datetime(2025, 11, 23),
        mtime_ns=0,
        data_size=1,
        data_md5="0" * 32,
    )
    session.add(diskfile)
    session.flush()
    session.add(
        Header(
            diskfile_id=diskfile.id,
            instrument="GMOS-N",
            observation_type="BIAS",
            reduction="RAW",
            types="BIAS CAL GMOS GMOS_N RAW UNPREPARED",
            local_time=time(19, 6, 7, 500000),
            coadds=1,
            spectroscopy=False,
            raw_iq="100",
        )
    )
    session.commit()
    row = session.execute(select(Header).where(Header.reduction == "RAW")).scalar_one()
    assert row.local_time == time(19, 6, 7, 500000)
    assert row.types.split() == sorted(row.types.split())
    assert row.spectroscopy is False and row.coadds == 1 and row.raw_iq == "100"
