"""``queueworker``: one row per running (or finished) worker process, for /health and /metrics.

Each process writes only its own row, with absolute figures, from its registry thread: workers
in different processes therefore add up correctly when /metrics sums the rows, and a row whose
heartbeat is older than a few of its own intervals belongs to a worker that is gone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fits_storage.orm.base import Base, BigIntPK, utcnow


class QueueWorker(Base):
    __tablename__ = "queueworker"
    __table_args__ = (Index("ix_queueworker_queue", "queue", "stopped"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    queue: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    interval_seconds: Mapped[float] = mapped_column(Float)
    stopped: Mapped[datetime | None] = mapped_column(DateTime)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    retried: Mapped[int] = mapped_column(Integer, default=0)
    seconds_total: Mapped[float] = mapped_column(Float, default=0.0)
    # Processing times of the processed entries, counted per registry.BUCKETS bound (+Inf last).
    buckets: Mapped[list[int]] = mapped_column(JSON, default=list)
