"""One table per queue (``ingestqueue``, ``exportqueue``, ...), all with the same core columns.

The partial indexes are what keep the queue fast and correct with millions of finished, failed
and deferred rows: claiming reads only ready waiting rows in sort order, deferred rows sit in
their own index by ``after``, and the in-progress check reads only in-progress rows. The
database itself refuses a second *waiting* entry for the same file, a second *in-progress*
entry for the same ``exclusive_columns``, and any status but the three of ``Status``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Boolean, CheckConstraint, DateTime, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from fits_storage.orm.base import Base, BigIntPK, utcnow

STATUSES = ("waiting", "in_progress", "failed")  # queues.status.Status, which sits above us


def _partial(status: str, condition: str = "") -> dict[str, Any]:
    clause = text(f"status = '{status}'" + (f" AND {condition}" if condition else ""))
    return {"sqlite_where": clause, "postgresql_where": clause}


class QueueEntryMixin:
    """Columns every queue table has. ``key_columns`` name one file's identity in the queue;
    entries sharing ``exclusive_columns`` are never in progress at the same time."""

    key_columns: ClassVar[tuple[str, ...]] = ("filename", "path")
    exclusive_columns: ClassVar[tuple[str, ...]] = ("filename",)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text, default="")
    sortkey: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    added: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    after: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:  # noqa: N805
        name = cls.__tablename__  # type: ignore[attr-defined]
        statuses = ", ".join(f"'{s}'" for s in STATUSES)
        return (
            Index(f"uq_{name}_waiting", *cls.key_columns, unique=True, **_partial("waiting")),
            Index(f"ix_{name}_claim", "sortkey", "id", **_partial("waiting", "after IS NULL")),
            Index(f"ix_{name}_deferred", "after", **_partial("waiting", "after IS NOT NULL")),
            Index(
                f"uq_{name}_in_progress",
                *cls.exclusive_columns,
                unique=True,
                **_partial("in_progress"),
            ),
            Index(f"ix_{name}_failed", "filename", **_partial("failed")),
            # The status page: failures newest first, and waiting counts and age, both read from
            # small indexes holding only those rows (cheap with a million finished or failed).
            Index(f"ix_{name}_failed_at", "failed_at", "id", **_partial("failed")),
            Index(f"ix_{name}_waiting_added", "added", **_partial("waiting")),
            CheckConstraint(f"status IN ({statuses})", name="status"),
        )


class IngestQueue(QueueEntryMixin, Base):
    __tablename__ = "ingestqueue"

    force: Mapped[bool] = mapped_column(Boolean, default=False)
    force_md5: Mapped[bool] = mapped_column(Boolean, default=False)
    # The producer wrote the file atomically itself (an upload stored, a DHS copy): the
    # "recently modified" deferral, a guard against half-written files, does not apply.
    complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class ExportQueue(QueueEntryMixin, Base):
    __tablename__ = "exportqueue"
    key_columns = ("filename", "path", "destination")
    exclusive_columns = ("filename", "destination")

    destination: Mapped[str] = mapped_column(Text, default="")


class PreviewQueue(QueueEntryMixin, Base):
    __tablename__ = "previewqueue"

    # Make the previews again even if this version has them (add_to_preview_queue --force).
    force: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class CalCacheQueue(QueueEntryMixin, Base):
    __tablename__ = "calcachequeue"


class UploadQueue(QueueEntryMixin, Base):
    """Uploads received by the archive, waiting to be moved into the data store."""

    __tablename__ = "uploadqueue"


class FileopsQueue(QueueEntryMixin, Base):
    """Header edits asked for by ``POST /update_headers``, one entry per file and request.

    Two requests for one file wait side by side (``request_id`` is part of the key) and are
    never applied at the same time (``filename`` is exclusive)."""

    __tablename__ = "fileopsqueue"
    key_columns = ("filename", "path", "request_id")

    request_id: Mapped[str] = mapped_column(String(32), default="")
    # The validated request as JSON: the values asked for, the keywords they set, reject_new.
    request: Mapped[str] = mapped_column(Text, default="{}")
    requester: Mapped[str] = mapped_column(String(255), default="")
