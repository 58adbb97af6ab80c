"""The one queue engine: add, claim, heartbeat, complete, fail, retry, count.

Functions take a session and never commit: the caller decides the transaction. The worker loop
commits right after a claim, and commits a completion together with the work's own database
writes, so the work's effects and the removal of its entry land together or not at all.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Executable, Row, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fits_storage.orm.base import utcnow
from fits_storage.orm.queues import QueueEntryMixin
from fits_storage.queues import statements as sql
from fits_storage.queues.sortkey import sortkey_for_filename
from fits_storage.queues.status import Status

BULK_ROWS = 10_000
# Counts stop here and estimate beyond: exact to ten thousand, cheap with millions.
COUNT_CAP = 10_000
# Claims that meet the unique in-progress index (two workers picked two entries of one file at
# the same moment) look again this many times before reporting nothing to do this time.
CLAIM_CLASHES = 5
# After parking this many entries, PostgreSQL's claim index holds as many dead entries at its
# head (the parked rows' old versions), which every claim walks until vacuum removes them.
RECLAIM_AFTER_PARKED = 1000


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
    """A queue's figures. A count above ``COUNT_CAP`` is an estimate, named in ``estimated``:
    PostgreSQL's planner estimate (at least the cap), or on SQLite the cap itself."""

    waiting: int = 0
    in_progress: int = 0
    failed: int = 0
    oldest_waiting: datetime | None = None
    deferred: int = 0  # of the waiting ones
    next_deferred: datetime | None = None  # when the first deferred entry is due
    estimated: tuple[str, ...] = ()

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
        lease_seconds: float = 60.0,
        max_attempts: int = 5,
        max_run_seconds: float = 3600.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.model = model
        self.table: Table = model.__table__  # type: ignore[attr-defined]
        self.name: str = self.table.name
        self.key = tuple(model.key_columns)
        self.exclusive = tuple(model.exclusive_columns)
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.max_run_seconds = max_run_seconds
        self.backoff = backoff or Backoff()
        self.extra_columns = tuple(c.name for c in self.table.c if c.name not in sql.CORE_COLUMNS)
        self._next_sweep = 0.0
        self._parked = 0  # entries parked since the table was last vacuumed for it

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

    def entry_values(
        self, filename: str, path: str = "", *, after: datetime | None = None, **extra: Any
    ) -> dict[str, Any]:
        """The columns of a new entry, as ``add`` writes them (for a statement of its own)."""
        return self._row(filename, path, after, extra)

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
        """Lease the next entry: the newest ready one, or one whose worker died.

        The sweep (fail entries that overran or whose workers keep dying, make due deferred
        entries ready, take over one dead worker's entry) costs a few statements, so it runs
        when nothing is ready, and otherwise at most every quarter lease: a rescue is never
        later than about 1.25 lease periods, a deferred entry is ready within a quarter lease of
        its time, and a busy queue pays one statement per claim.
        """
        swept = self.sweep_due()
        row = self._sweep(session, worker) if swept else None
        if row is None:
            row = self._claim_waiting(session, worker)
        if row is None and not swept:
            row = self._sweep(session, worker) or self._claim_waiting(session, worker)
        return None if row is None else self._entry(row._mapping, worker)

    def _claim_waiting(self, session: Session | Connection, worker: Worker) -> Row | None:
        skip_locked = _dialect_name(session) == "postgresql"
        statement = sql.claim_waiting(self.table, self.exclusive, skip_locked)
        return _run_claim(session, statement, self.lease_params(worker))

    def complete_and_claim(
        self, session: Session | Connection, entry: Entry, worker: Worker
    ) -> tuple[bool, Entry | None]:
        """``complete`` the entry in hand and ``claim`` the next one.

        Returns (completed, next entry or None). When not completed (the lease was lost) nothing
        was changed or claimed, and the caller must roll back its own writes, as after
        ``complete``. On a PostgreSQL connection in autocommit this is one statement
        (``finish_and_claim``) unless the sweep is due; otherwise two steps in the caller's
        transaction (on SQLite, one ``BEGIN IMMEDIATE`` transaction: one commit instead of two).
        """
        if not _autocommit_postgresql(session) or self.sweep_due():
            return self._complete_then_claim(session, entry, worker)
        params = {**self._finish_params(entry), **self.lease_params(worker)}
        statement = sql.finish_and_claim(self.table, self.key, self.exclusive)
        assert isinstance(session, Connection)
        text_ = sql.compiled(statement, session.dialect)
        row = _run_claim(session, text_, params)
        if row is None:  # clashed every time: finish alone, then claim as usual
            return self._complete_then_claim(session, entry, worker)
        mapping = row._mapping
        if not mapping["finished"]:
            return False, None
        if mapping["id"] is None:
            return True, None
        return True, self.claimed_entry(mapping, worker)

    def _complete_then_claim(
        self, session: Session | Connection, entry: Entry, worker: Worker
    ) -> tuple[bool, Entry | None]:
        if not self.complete(session, entry):
            return False, None
        return True, self.claim(session, worker)

    def sweep_due(self) -> bool:
        """Whether the next claim must sweep first (a claim made in passing must not be it)."""
        return time.monotonic() >= self._next_sweep

    @staticmethod
    def lease_params(worker: Worker) -> dict[str, Any]:
        """The parameters of a statement that leases entries to ``worker``."""
        return {"worker": worker.name, "host": worker.host, "pid": worker.pid}

    def claimed_entry(self, row: Mapping[str, Any], worker: Worker) -> Entry:
        """The entry a leasing statement (``statements.claim_if``) returned in ``row``."""
        return self._entry({c: row[c] for c in sql.claimed_columns(self.table)}, worker)

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

    def _sweep(self, session: Session | Connection, worker: Worker) -> Row | None:
        """Fail entries that overran or whose workers keep dying on them, make due deferred
        entries ready, and take over one entry whose worker died."""
        self._next_sweep = time.monotonic() + self.lease_seconds / 4
        stale = {"stale_offset": -float(self.lease_seconds), "max_attempts": self.max_attempts}
        abandoned = (
            f"worker stopped {self.max_attempts} times while processing this entry; "
            "not handed out again"
        )
        session.execute(sql.fail_abandoned(self.table), {**stale, "error": abandoned})
        overrun = {
            "overrun_offset": -float(self.max_run_seconds + self.lease_seconds),
            "error": f"ran longer than {self.max_run_seconds:g}s (queue_max_run_seconds) and its "
            "worker did not stop it; failed so that the file is free again",
        }
        session.execute(sql.fail_overrun(self.table), overrun)
        session.execute(sql.promote_due(self.table))
        skip_locked = _dialect_name(session) == "postgresql"
        statement = sql.claim_stale(self.table, skip_locked)
        return session.execute(statement, {**self.lease_params(worker), **stale}).first()

    # -- finishing ----------------------------------------------------------------------------

    @staticmethod
    def _fence(entry: Entry) -> dict[str, Any]:
        return {
            "fence_id": entry.id,
            "fence_worker": entry.worker,
            "fence_attempts": entry.attempts,
        }

    def complete(self, session: Session | Connection, entry: Entry) -> bool:
        """Remove a finished entry and, only if that succeeded, the file's earlier failures.

        False if the lease was lost: nothing was changed, and the caller must roll back (its
        work, too, belongs to whoever holds the entry now).
        """
        params = self._finish_params(entry)
        if _dialect_name(session) == "postgresql":
            return bool(session.execute(sql.finish(self.table, self.key), params).scalar())
        if session.execute(sql.complete(self.table), params).rowcount != 1:
            return False
        session.execute(sql.clear_failures(self.table, self.key), params)
        return True

    def _finish_params(self, entry: Entry) -> dict[str, Any]:
        return {**self._fence(entry), **{f"key_{col}": entry[col] for col in self.key}}

    def fail(self, session: Session, entry: Entry, error: str, tb: str | None = None) -> bool:
        """Mark failed for good, keeping the error and traceback for the status page."""
        params = {**self._fence(entry), "error": error, "tb": tb}
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
        alike: tuple[str, ...] = (),
    ) -> bool:
        """A transient failure: wait with backoff and try again, or fail once attempts run out.

        ``alike`` names columns: every waiting entry sharing their values with this one waits
        as long (a destination that is down holds back its whole backlog in one statement).
        Returns True if the entry will be retried.
        """
        if counts and entry.attempts >= self.max_attempts:
            self.fail(session, entry, f"gave up after {entry.attempts} attempts: {error}", tb)
            return False
        seconds = float(self.backoff.delay(entry.attempts) if delay is None else delay)
        attempts = entry.attempts if counts else entry.attempts - 1
        retried = self._requeue(session, entry, seconds, attempts, error, tb)
        if retried and alike:
            params = {
                "delay": seconds,
                "error": error,
                **{f"alike_{col}": entry[col] for col in alike},
            }
            self._parked += session.execute(sql.defer_alike(self.table, alike), params).rowcount
        return retried

    def reclaim_after_parking(self, conn: Connection) -> bool:
        """PostgreSQL: once many entries were parked, ``VACUUM`` the table (on an autocommit
        connection, after the park has committed), so that claims stop walking the parked rows'
        dead entries in the claim index: about 1,000 index pages per claim for 100,000 parked
        entries, until autovacuum comes by. ``SKIP_LOCKED``: never waits on a running vacuum.
        True if it ran."""
        if self._parked < RECLAIM_AFTER_PARKED or conn.dialect.name != "postgresql":
            return False
        self._parked = 0
        conn.exec_driver_sql(f"VACUUM (SKIP_LOCKED) {self.name}")
        return True

    def release(self, session: Session, entry: Entry) -> bool:
        """Give an entry back untouched (shutdown, lost database): not counted as an attempt."""
        return self._requeue(session, entry, None, entry.attempts - 1, None, None)

    def _requeue(
        self,
        session: Session,
        entry: Entry,
        delay: float | None,
        attempts: int,
        error: str | None,
        tb: str | None,
    ) -> bool:
        params = {
            **self._fence(entry),
            "next_attempts": attempts,
            "error": error,
            "tb": tb,
        }
        if delay is not None:
            params["delay"] = delay
        statement = sql.requeue(self.table, self.key, delay is not None)
        try:
            with session.begin_nested():
                if session.execute(statement, params).rowcount == 1:
                    return True
        except IntegrityError:
            pass  # the file was re-added at this very moment: that entry covers it
        # Superseded by a waiting entry for the same file (or the lease was lost): drop ours.
        session.execute(sql.complete(self.table), self._fence(entry))
        return False

    def heartbeat(self, session: Session, entry: Entry) -> bool:
        """Keep the lease alive; False means it was lost (another worker may have the entry)."""
        return session.execute(sql.heartbeat(self.table), self._fence(entry)).rowcount == 1

    # -- looking ------------------------------------------------------------------------------

    def counts(self, session: Session | Connection) -> QueueCounts:
        """Exact up to ``COUNT_CAP`` per status, estimated above (see ``QueueCounts``)."""
        row = session.execute(sql.counts(self.table, COUNT_CAP)).one()._mapping
        return self.counts_from(session, row)

    def counts_from(self, session: Session | Connection, row: Mapping[str, Any]) -> QueueCounts:
        """``QueueCounts`` from a row of ``statements.counts`` (estimating capped figures)."""
        figures: dict[str, Any] = {
            "oldest_waiting": row["oldest"],
            "next_deferred": row["next_due"],
        }
        estimated = []
        for name in ("waiting", "in_progress", "failed", "deferred"):
            figures[name] = row[name]
            if row[name] > COUNT_CAP:
                estimated.append(name)
                figures[name] = max(COUNT_CAP, self._estimate(session, name))
        return QueueCounts(**figures, estimated=tuple(estimated))

    def _estimate(self, session: Session | Connection, name: str) -> int:
        if _dialect_name(session) != "postgresql":
            return COUNT_CAP
        status = Status.WAITING.value if name == "deferred" else name
        plan = session.execute(sql.estimate_rows(self.table, status)).scalar_one()
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])

    def entries(self, session: Session, status: Status, limit: int = 50) -> list[Mapping]:
        rows = session.execute(
            sql.list_entries(self.table), {"status": status.value, "limit": limit}
        )
        return [dict(r._mapping) for r in rows]


def _autocommit_postgresql(executor: Session | Connection) -> bool:
    return (
        isinstance(executor, Connection)
        and executor.dialect.name == "postgresql"
        and executor.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    )


def _run_claim(
    executor: Session | Connection, statement: Executable | str, params: dict[str, Any]
) -> Row | None:
    """Run a claiming statement; when it meets the unique in-progress index (another worker
    took an entry of the same file at this very moment), look again: the next try sees that
    entry in progress and passes over its file.

    The statement must be retryable: in autocommit (PostgreSQL's worker loop) a failed statement
    changed nothing; in a PostgreSQL transaction a savepoint keeps the caller's work; SQLite's
    ``BEGIN IMMEDIATE`` serialises claimers, so there it never clashes.
    """
    savepoint = isinstance(executor, Session) and _dialect_name(executor) == "postgresql"
    for _ in range(CLAIM_CLASHES):
        try:
            with executor.begin_nested() if savepoint else nullcontext():  # type: ignore[union-attr]
                if isinstance(statement, str):
                    assert isinstance(executor, Connection)
                    return executor.exec_driver_sql(statement, params).first()
                return executor.execute(statement, params).first()
        except IntegrityError:
            if isinstance(executor, Connection) and _autocommit_postgresql(executor):
                executor.rollback()
            elif not savepoint:
                raise
    return None
