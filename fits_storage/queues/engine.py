"""The one queue engine: add, claim, heartbeat, complete, fail, retry, count.

Functions take a session and never commit: the caller decides the transaction. The worker loop
commits right after a claim, and commits a completion together with the work's own database
writes, so the work's effects and the removal of its entry land together or not at all.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fits_storage.orm.base import utcnow
from fits_storage.orm.queues import QueueEntryMixin
from fits_storage.queues import statements as sql
from fits_storage.queues.sortkey import sortkey_for_filename
from fits_storage.queues.status import Status

BULK_ROWS = 10_000


def _dialect_name(executor: Session | Connection) -> str:
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    return bind.dialect.name


@dataclass(frozen=True)
class Worker:
    """Who holds a lease: recorded on each claimed entry for operators to see."""

    name: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True)
class Entry:
    """A claimed entry: the fence needed to change it later, and ``row``: the claimed columns
    (``statements.claimed_columns``: the lease holder and the queue's own columns)."""

    id: int
    filename: str
    path: str
    attempts: int
    worker: str
    row: Mapping[str, Any]

    def __getitem__(self, column: str) -> Any:
        return self.row[column]


@dataclass(frozen=True)
class QueueCounts:
    waiting: int = 0
    in_progress: int = 0
    failed: int = 0
    oldest_waiting: datetime | None = None

    @property
    def total(self) -> int:
        return self.waiting + self.in_progress + self.failed


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: base * 2**(n-1), capped, scaled by a random 50-100%."""

    base_seconds: float = 5.0
    cap_seconds: float = 600.0

    def delay(self, attempt: int) -> float:
        raw = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return raw * random.uniform(0.5, 1.0)


class Queue:
    """One queue table and the rules for handing out its entries."""

    def __init__(
        self,
        model: type[QueueEntryMixin],
        *,
        exclusive: tuple[str, ...] = ("filename",),
        lease_seconds: float = 60.0,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
    ) -> None:
        self.model = model
        self.table: Table = model.__table__  # type: ignore[attr-defined]
        self.name: str = self.table.name
        self.key = tuple(model.key_columns)
        self.exclusive = exclusive
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.extra_columns = tuple(c.name for c in self.table.c if c.name not in sql.CORE_COLUMNS)
        self._next_sweep = 0.0

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel announcing new entries."""
        return f"fits_storage_{self.name}"

    # -- adding -------------------------------------------------------------------------------

    def _row(self, filename: str, path: str, after: datetime | None, extra: Mapping) -> dict:
        unknown = set(extra) - set(self.extra_columns)
        if unknown:
            raise TypeError(f"{self.name} has no column(s) {sorted(unknown)}")
        row = {}
        for column in self.extra_columns:
            default = self.table.c[column].default
            row[column] = extra.get(column, default.arg if default is not None else None)
        row.update(
            filename=filename,
            path=path,
            sortkey=sortkey_for_filename(filename),
            status=Status.WAITING.value,
            added=utcnow(),
            after=after,
            attempts=0,
        )
        return row

    def add(
        self,
        session: Session,
        filename: str,
        path: str = "",
        *,
        after: datetime | None = None,
        **extra: Any,
    ) -> bool:
        """Queue one file; False if it was already waiting."""
        return (
            self.add_many(session, [dict(filename=filename, path=path, after=after, **extra)]) == 1
        )

    def add_many(self, session: Session, items: Iterable[Mapping[str, Any]]) -> int:
        """Queue many files in few statements; returns how many were new (not already waiting)."""
        dialect = _dialect_name(session)
        added = 0
        batch: list[dict] = []
        for item in items:
            extra = {k: v for k, v in item.items() if k not in ("filename", "path", "after")}
            batch.append(
                self._row(item["filename"], item.get("path", ""), item.get("after"), extra)
            )
            if len(batch) >= BULK_ROWS:
                added += self._insert(session, dialect, batch)
                batch = []
        if batch:
            added += self._insert(session, dialect, batch)
        return added

    def _insert(self, session: Session, dialect: str, rows: list[dict]) -> int:
        statement = sql.insert_entries(self.table, dialect, tuple(rows[0]))
        if dialect == "postgresql":
            columns = {name: [row[name] for row in rows] for name in rows[0]}
            inserted = len(session.execute(statement, columns).all())
            if inserted:
                session.execute(sql.notify(), {"channel": self.channel})
            return inserted
        return len(session.execute(statement, rows).all())

    # -- claiming -----------------------------------------------------------------------------

    def claim(self, session: Session | Connection, worker: Worker) -> Entry | None:
        """Lease the next entry: the newest waiting one, or one whose worker died.

        Looking for dead workers' entries costs two statements, so it is done when nothing is
        waiting, and otherwise at most every quarter lease: a rescue is never later than
        about 1.25 lease periods, and a busy queue pays one statement per claim.
        """
        skip_locked = _dialect_name(session) == "postgresql"
        params = self._lease_params(worker)
        row = None
        swept = self._sweep_due()
        if swept:
            row = self._claim_stale(session, params, skip_locked)
        if row is None:
            row = session.execute(
                sql.claim_waiting(self.table, self.exclusive, skip_locked), params
            ).first()
        if row is None and not swept:
            row = self._claim_stale(session, params, skip_locked)
        return None if row is None else self._entry(row._mapping, worker)

    def complete_and_claim(
        self, session: Session | Connection, entry: Entry, worker: Worker
    ) -> tuple[bool, Entry | None]:
        """``complete`` the entry in hand and ``claim`` the next one in the same transaction.

        Returns (completed, next entry or None). When not completed (the lease was lost) nothing
        was claimed and the caller must roll back, as after ``complete``. On PostgreSQL this is
        one statement (``finish_and_claim``) unless the dead-worker sweep is due; on SQLite two
        statements in the caller's one ``BEGIN IMMEDIATE`` transaction, one commit instead of two.
        """
        if _dialect_name(session) != "postgresql" or self._sweep_due():
            if not self.complete(session, entry):
                return False, None
            return True, self.claim(session, worker)
        params = {**self._finish_params(entry), **self._lease_params(worker)}
        conn = session.connection() if isinstance(session, Session) else session
        statement = sql.finish_and_claim(self.table, self.key, self.exclusive)
        text_ = sql.compiled(statement, conn.dialect)
        row = conn.exec_driver_sql(text_, params).one()._mapping
        if not row["finished"]:
            return False, None
        if row["id"] is None:
            return True, None
        return True, self._entry({c: row[c] for c in sql.claimed_columns(self.table)}, worker)

    def _sweep_due(self) -> bool:
        return time.monotonic() >= self._next_sweep

    @staticmethod
    def _lease_params(worker: Worker) -> dict[str, Any]:
        return {"worker": worker.name, "host": worker.host, "pid": worker.pid, "now": utcnow()}

    @staticmethod
    def _entry(mapping: Mapping[str, Any], worker: Worker) -> Entry:
        return Entry(
            id=mapping["id"],
            filename=mapping["filename"],
            path=mapping["path"],
            attempts=mapping["attempts"],
            worker=worker.name,
            row=dict(mapping),
        )

    def _claim_stale(
        self, session: Session | Connection, params: dict, skip_locked: bool
    ) -> Row | None:
        """Fail entries whose workers keep dying on them; take over one whose worker died."""
        self._next_sweep = time.monotonic() + self.lease_seconds / 4
        stale = {
            "stale_before": params["now"] - timedelta(seconds=self.lease_seconds),
            "max_attempts": self.max_attempts,
        }
        error = (
            f"worker stopped {self.max_attempts} times while processing this entry; "
            "not handed out again"
        )
        session.execute(
            sql.fail_abandoned(self.table), {**stale, "now": params["now"], "error": error}
        )
        return session.execute(
            sql.claim_stale(self.table, skip_locked), {**params, **stale}
        ).first()

    # -- finishing ----------------------------------------------------------------------------

    @staticmethod
    def _fence(entry: Entry) -> dict[str, Any]:
        return {
            "fence_id": entry.id,
            "fence_worker": entry.worker,
            "fence_attempts": entry.attempts,
        }

    def complete(self, session: Session | Connection, entry: Entry) -> bool:
        """Remove a finished entry and the file's earlier failures.

        False if the lease was lost: the caller must then roll back (its work, too, belongs to
        whoever holds the entry now).
        """
        deleted = session.execute(sql.finish(self.table, self.key), self._finish_params(entry))
        return Status.IN_PROGRESS.value in deleted.scalars().all()

    def _finish_params(self, entry: Entry) -> dict[str, Any]:
        return {**self._fence(entry), **{f"key_{col}": entry[col] for col in self.key}}

    def fail(self, session: Session, entry: Entry, error: str, tb: str | None = None) -> bool:
        """Mark failed for good, keeping the error and traceback for the status page."""
        params = {**self._fence(entry), "now": utcnow(), "error": error, "tb": tb}
        return session.execute(sql.fail(self.table), params).rowcount == 1

    def retry(
        self,
        session: Session,
        entry: Entry,
        error: str,
        tb: str | None = None,
        *,
        delay: float | None = None,
        counts: bool = True,
    ) -> bool:
        """A transient failure: wait with backoff and try again, or fail once attempts run out.

        Returns True if the entry will be retried.
        """
        if counts and entry.attempts >= self.max_attempts:
            self.fail(session, entry, f"gave up after {entry.attempts} attempts: {error}", tb)
            return False
        seconds = self.backoff.delay(entry.attempts) if delay is None else delay
        after = utcnow() + timedelta(seconds=seconds)
        attempts = entry.attempts if counts else entry.attempts - 1
        return self._requeue(session, entry, after, attempts, error, tb)

    def release(self, session: Session, entry: Entry) -> bool:
        """Give an entry back untouched (shutdown, lost database): not counted as an attempt."""
        return self._requeue(session, entry, None, entry.attempts - 1, None, None)

    def _requeue(
        self,
        session: Session,
        entry: Entry,
        after: datetime | None,
        attempts: int,
        error: str | None,
        tb: str | None,
    ) -> bool:
        params = {
            **self._fence(entry),
            "after": after,
            "next_attempts": attempts,
            "error": error,
            "tb": tb,
        }
        try:
            with session.begin_nested():
                if session.execute(sql.requeue(self.table, self.key), params).rowcount == 1:
                    return True
        except IntegrityError:
            pass  # the file was re-added at this very moment: that entry covers it
        # Superseded by a waiting entry for the same file (or the lease was lost): drop ours.
        session.execute(sql.complete(self.table), self._fence(entry))
        return False

    def heartbeat(self, session: Session, entry: Entry) -> bool:
        """Keep the lease alive; False means it was lost (another worker may have the entry)."""
        params = {**self._fence(entry), "now": utcnow()}
        return session.execute(sql.heartbeat(self.table), params).rowcount == 1

    # -- looking ------------------------------------------------------------------------------

    def counts(self, session: Session) -> QueueCounts:
        figures: dict[str, Any] = {}
        for status, number, oldest in session.execute(sql.counts(self.table)):
            figures[status] = number
            if status == Status.WAITING.value:
                figures["oldest_waiting"] = oldest
        return QueueCounts(**figures)

    def entries(self, session: Session, status: Status, limit: int = 50) -> list[Mapping]:
        rows = session.execute(
            sql.list_entries(self.table), {"status": status.value, "limit": limit}
        )
        return [dict(r._mapping) for r in rows]
