"""The tables operators query by hand: ``file``, ``diskfile``, ``header`` and their reports."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fits_storage.orm.base import Base, BigIntPK, utcnow


class File(Base):
    """One row per file name (``.bz2`` trimmed), whatever its versions and paths."""

    __tablename__ = "file"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)

    diskfiles: Mapped[list[DiskFile]] = relationship(back_populates="file")


class DiskFile(Base):
    """One row per stored version of a file: where it is, its size, md5s and mtime."""

    __tablename__ = "diskfile"
    __table_args__ = (
        Index(
            "ix_diskfile_present_filename",
            "filename",
            "path",
            sqlite_where=text("present"),
            postgresql_where=text("present"),
        ),
        Index(
            "uq_diskfile_canonical_file",
            "file_id",
            unique=True,
            sqlite_where=text("canonical"),
            postgresql_where=text("canonical"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("file.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text, default="")
    present: Mapped[bool] = mapped_column(Boolean, default=True)
    canonical: Mapped[bool] = mapped_column(Boolean, default=True)
    file_size: Mapped[int] = mapped_column(BigInteger)
    file_md5: Mapped[str] = mapped_column(String(32))
    lastmod: Mapped[datetime] = mapped_column(DateTime)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    compressed: Mapped[bool] = mapped_column(Boolean, default=False)
    data_size: Mapped[int] = mapped_column(BigInteger)
    data_md5: Mapped[str] = mapped_column(String(32))
    entrytime: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    file: Mapped[File] = relationship(back_populates="diskfiles")
    header: Mapped[Header | None] = relationship(back_populates="diskfile", uselist=False)


class Header(Base):
    """The observatory metadata of one diskfile; a missing or malformed keyword is NULL.

    One wide row for every instrument (docs/descriptors.md): the fields calibration rules
    match on are columns here, and ``ix_header_calibration`` serves every instrument's rules.
    """

    __tablename__ = "header"
    __table_args__ = (
        Index(
            "ix_header_calibration", "instrument", "observation_type", "reduction", "ut_datetime"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    diskfile_id: Mapped[int] = mapped_column(ForeignKey("diskfile.id"), unique=True)
    program_id: Mapped[str | None] = mapped_column(String(80), index=True)
    observation_id: Mapped[str | None] = mapped_column(String(80))
    data_label: Mapped[str | None] = mapped_column(String(80), index=True)
    telescope: Mapped[str | None] = mapped_column(String(40))
    instrument: Mapped[str | None] = mapped_column(String(40), index=True)
    ut_datetime: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    observation_type: Mapped[str | None] = mapped_column(String(40))
    observation_class: Mapped[str | None] = mapped_column(String(40))
    object: Mapped[str | None] = mapped_column(String(80))
    ra: Mapped[float | None] = mapped_column(Float)
    dec: Mapped[float | None] = mapped_column(Float)
    filter_name: Mapped[str | None] = mapped_column(String(80))
    exposure_time: Mapped[float | None] = mapped_column(Float)
    disperser: Mapped[str | None] = mapped_column(String(80))
    central_wavelength: Mapped[float | None] = mapped_column(Float)
    detector_binning: Mapped[str | None] = mapped_column(String(16))
    airmass: Mapped[float | None] = mapped_column(Float)
    qa_state: Mapped[str | None] = mapped_column(String(20))
    release: Mapped[datetime | None] = mapped_column(DateTime)
    engineering: Mapped[bool | None] = mapped_column(Boolean)
    science_verification: Mapped[bool | None] = mapped_column(Boolean)
    calibration_program: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(Text)
    # computed by fits_storage.descriptors (migration 0007)
    types: Mapped[str | None] = mapped_column(Text)
    reduction: Mapped[str | None] = mapped_column(String(40), index=True)
    site: Mapped[str | None] = mapped_column(String(20))
    local_time: Mapped[time | None] = mapped_column(Time)
    coadds: Mapped[int | None] = mapped_column(Integer)
    focal_plane_mask: Mapped[str | None] = mapped_column(String(80))
    wavelength_band: Mapped[str | None] = mapped_column(String(20))
    mode: Mapped[str | None] = mapped_column(String(20))
    spectroscopy: Mapped[bool | None] = mapped_column(Boolean)
    detector_roi_setting: Mapped[str | None] = mapped_column(String(40))
    detector_readmode: Mapped[str | None] = mapped_column(String(40))
    detector_gain_setting: Mapped[str | None] = mapped_column(String(20))
    detector_welldepth: Mapped[str | None] = mapped_column(String(20))
    amp_read_area: Mapped[str | None] = mapped_column(Text)
    nod_and_shuffle: Mapped[bool | None] = mapped_column(Boolean)
    adaptive_optics: Mapped[bool | None] = mapped_column(Boolean)
    laser_guide_star: Mapped[bool | None] = mapped_column(Boolean)
    raw_iq: Mapped[str | None] = mapped_column(String(8))
    raw_cc: Mapped[str | None] = mapped_column(String(8))
    raw_wv: Mapped[str | None] = mapped_column(String(8))
    raw_bg: Mapped[str | None] = mapped_column(String(8))
    # migration 0011: what FitsStorage's GMOS rules also match on
    elevation: Mapped[float | None] = mapped_column(Float)
    cass_rotator_pa: Mapped[float | None] = mapped_column(Float)
    nod_count: Mapped[int | None] = mapped_column(Integer)
    nod_pixels: Mapped[int | None] = mapped_column(Integer)
    overscan_trimmed: Mapped[bool | None] = mapped_column(Boolean)
    overscan_subtracted: Mapped[bool | None] = mapped_column(Boolean)

    diskfile: Mapped[DiskFile] = relationship(back_populates="header")


class FullTextHeader(Base):
    """Every HDU's header as text, for searching and display."""

    __tablename__ = "fulltextheader"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    diskfile_id: Mapped[int] = mapped_column(ForeignKey("diskfile.id"), unique=True)
    fulltext: Mapped[str] = mapped_column(Text)


class DiskFileReport(Base):
    """Verification output for one diskfile: astropy's, and fitsverify's when installed."""

    __tablename__ = "diskfilereport"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    diskfile_id: Mapped[int] = mapped_column(ForeignKey("diskfile.id"), unique=True)
    astropy_ok: Mapped[bool] = mapped_column(Boolean)
    astropy_report: Mapped[str] = mapped_column(Text, default="")
    fitsverify_ok: Mapped[bool | None] = mapped_column(Boolean)
    fitsverify_report: Mapped[str | None] = mapped_column(Text)
