"""The summit's files that are not FITS: observing logs (``obslog``) and miscellaneous files
(``miscfile``). Each row belongs to one diskfile (one stored version), as ``header`` does, so
they follow the same version and ``present`` rules as FITS files."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fits_storage.orm.base import Base, BigIntPK, utcnow


class Obslog(Base):
    """An observing log, ``<YYYYMMDD>_<program>_obslog.txt``: its UT date and program (from
    its name) and its text."""

    __tablename__ = "obslog"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    diskfile_id: Mapped[int] = mapped_column(ForeignKey("diskfile.id"), unique=True)
    date: Mapped[date | None] = mapped_column(Date, index=True)
    program_id: Mapped[str | None] = mapped_column(String(80), index=True)
    text: Mapped[str] = mapped_column(Text)
    entrytime: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class MiscFile(Base):
    """A miscellaneous file (``miscfile_<name>``: a tarball, a PDF...) and the metadata of its
    ``miscfile_<name>.json``, FitsStorage's keys: ``release``, ``description``, ``program``,
    ``filename`` (the name it was given before the prefix)."""

    __tablename__ = "miscfile"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    diskfile_id: Mapped[int] = mapped_column(ForeignKey("diskfile.id"), unique=True)
    release: Mapped[datetime | None] = mapped_column(DateTime)
    description: Mapped[str | None] = mapped_column(Text)
    program_id: Mapped[str | None] = mapped_column(String(80), index=True)
    original_name: Mapped[str | None] = mapped_column(Text)
    meta_md5: Mapped[str] = mapped_column(String(32))
    entrytime: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
