"""The pictures made of each file version (``preview``), and why some versions have none
(``previewnote``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fits_storage.orm.base import Base, BigIntPK, utcnow


class Preview(Base):
    """One JPEG of one diskfile: the ``full`` preview or the ``thumb``; ``key`` names it in
    the preview store (storage/previews.py)."""

    __tablename__ = "preview"
    __table_args__ = (
        UniqueConstraint("diskfile_id", "size"),
        CheckConstraint("size IN ('full', 'thumb')", name="size"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    diskfile_id: Mapped[int] = mapped_column(ForeignKey("diskfile.id"), index=True)
    size: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    md5: Mapped[str] = mapped_column(String(32))
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    key: Mapped[str] = mapped_column(Text)


class PreviewNote(Base):
    """Why a diskfile has no preview (a table, a header-only file): not a failure."""

    __tablename__ = "previewnote"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    diskfile_id: Mapped[int] = mapped_column(ForeignKey("diskfile.id"), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
