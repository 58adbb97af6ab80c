"""``fileuploadlog``: one row per upload the archive received."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fits_storage.orm.base import Base, BigIntPK, utcnow


class FileUploadLog(Base):
    __tablename__ = "fileuploadlog"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), index=True)
    path: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    client: Mapped[str | None] = mapped_column(String(255))
    received: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    stored: Mapped[datetime | None] = mapped_column(DateTime)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(Text)
