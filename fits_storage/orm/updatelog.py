"""``updatelog``: the audit of every header edit, one row per request (never per attempt)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fits_storage.orm.base import Base, BigIntPK, utcnow


class UpdateLog(Base):
    """Who asked for which keywords of which file, the values before and after, and the md5
    before and after. Written before the edited file replaces the old one (``applied`` still
    empty) and marked ``applied`` after, so a worker killed in between finds the old values it
    recorded rather than reading its own edit as "old". ``md5_after`` comes later still, from
    the ingest of the new version (``fileops/audit.py``); a request whose values the file
    already held has it at once, equal to ``md5_before``."""

    __tablename__ = "updatelog"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32), unique=True)
    filename: Mapped[str] = mapped_column(String(255), index=True)
    path: Mapped[str] = mapped_column(Text, default="")
    requester: Mapped[str] = mapped_column(String(255), default="")
    requested: Mapped[datetime] = mapped_column(DateTime)
    started: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    applied: Mapped[datetime | None] = mapped_column(DateTime)
    old_values: Mapped[str] = mapped_column(Text)  # JSON {keyword: value or null if absent}
    new_values: Mapped[str] = mapped_column(Text)  # JSON {keyword: value}
    md5_before: Mapped[str] = mapped_column(String(32))
    md5_after: Mapped[str | None] = mapped_column(String(32))
