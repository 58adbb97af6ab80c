"""Staff accounts of the web pages, and the audit trail of what staff did to the queues."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fits_storage.orm.base import Base, BigIntPK, utcnow


class StaffUser(Base):
    """One login. ``password_hash`` is an argon2id PHC string: salt and cost travel with it."""

    __tablename__ = "staffuser"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    password_changed: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class StaffAudit(Base):
    """Who retried or removed which queue entry, and when (kept after the entry is gone)."""

    __tablename__ = "staffaudit"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(32))
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(Text)
