"""The queue worker loop shared by every ``service_*_queue`` command.

A worker is the queue engine + one work function + this loop. The loop claims an entry, keeps
its lease alive from a heartbeat thread while the work runs, then records the outcome:

* the work returns: its writes are flushed and committed together with the completion;
* it raises ``TransientError``: retried later (with backoff, or the delay it asks for);
* the database raises an error that is not a lost connection (a statement or lock timeout, a
  deadlock, a constraint, a missing table), in the work or at its flush or commit: retried with
  backoff and counted, so it ends failed after ``queue_max_attempts``;
* it raises anything else, or runs past ``queue_max_run_seconds``: failed, with a one-line error
  and the full traceback kept;
* the database connection is lost: the entry is handed back (or, failing that, its lease
  simply expires) and the loop retries the connection with backoff instead of crash-looping.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fits_storage.db.errors import is_database_lost
from fits_storage.queues import Entry, Queue, RunTimeExceeded, TransientError, Worker
from fits_storage.queues.context import WorkContext
from fits_storage.queues.engine import Backoff
from fits_storage.queues.notify import Waker
from fits_storage.queues.registry import WorkerStats, queue_label
from fits_storage.service.daemon import EXIT_FAILURE, Daemon
from fits_storage.service.logs import one_line
from fits_storage.service.registration import Registration

DB_RETRY = Backoff(base_seconds=1.0, cap_seconds=60.0)

WorkFunction = Callable[[Session, Entry, WorkContext], None]

__all__ = ["QueueLoop", "WorkFunction", "one_line"]


class DatabaseOutage:
    """A daemon loop's run of lost-database failures: back off with one warning each, and say
    once when the database is back. A one-shot run (cron, a hand-run --empty) gives up after
    ``one_shot_db_patience`` seconds; a daemon keeps trying."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.patience = daemon.config.one_shot_db_patience
        self.failures = 0
        self.since: float | None = None

    def back_off(self, exc: BaseException) -> bool:
        """Wait before the next try if ``exc`` is a lost database; False (re-raise) otherwise."""
        if not is_database_lost(exc):
            return False
        self.failures += 1
        now = time.monotonic()
        self.since = self.since or now
        if self.daemon.one_shot and now - self.since >= self.patience:
            raise DatabaseUnreachable(
                f"database unreachable for {now - self.since:.0f}s ({one_line(exc)}); giving up"
            ) from exc
        delay = DB_RETRY.delay(self.failures)
        if self.daemon.one_shot:  # no sleeping past the point of giving up
            delay = min(delay, self.patience - (now - self.since) + 0.1)
        self.daemon.logger.warning(
            "database unavailable (%s); retrying in %.1fs", one_line(exc), delay
        )
        self.daemon.sleep(delay)
        return True

    def over(self) -> None:
        if self.failures:
            self.daemon.logger.info("database connection restored")
            self.failures = 0
            self.since = None


class DatabaseUnreachable(RuntimeError):
    """A one-shot run could not reach its database in time."""


@dataclass
class RunSummary:
    """What a run did, for the one line a one-shot run ends with."""

    processed: int = 0
    failed: int = 0
    deferred: int = 0

    def describe(self, next_ready: datetime | None) -> str:
        text = f"{self.processed} processed, {self.failed} failed, {self.deferred} deferred"
        if next_ready is not None:
            text += f"; deferred entries become ready from {next_ready:%Y-%m-%d %H:%M:%S} UTC"
        return text


class QueueLoop:
    def __init__(self, daemon: Daemon, queue: Queue, work: WorkFunction) -> None:
        self.daemon = daemon
        self.queue = queue
        self.work = work
        self.log = daemon.logger
        self.worker = Worker(f"{daemon.command}-{daemon.name}")
        self.context = WorkContext(
            daemon.config,
            daemon.logger,
            daemon.args,
            daemon.stopping,
            daemon.session_factory,
            self.worker,
        )
        self.waker = Waker(daemon.config.database_url, queue.channel, daemon.stopping)
        self.heartbeat = Heartbeat(queue, daemon)
        self.limit = RunLimit(queue.max_run_seconds)
        self.summary = RunSummary()
        self.stats = WorkerStats()
        self.registration = Registration(daemon, self.worker, queue_label(queue.name), self.stats)
        self._conn: Connection | None = None
        self._postgresql = daemon.engine.dialect.name == "postgresql"

    def run(self) -> int | None:
        """Work until stopped (or, with --empty/--oneshot, until done); a one-shot run ends
        with a summary and exits non-zero if any entry failed in it."""
        daemon, args = self.daemon, self.daemon.args
        daemon.notifier.ready()
        self.heartbeat.start()
        self.registration.start()
        outage = DatabaseOutage(daemon)
        entry: Entry | None = None
        try:
            with self.limit.installed(daemon.engine):
                while not daemon.stopping.is_set():
                    daemon.notifier.watchdog()
                    if entry is None:
                        try:
                            entry = self._claim()
                        except Exception as exc:
                            if not outage.back_off(exc):
                                raise
                            continue
                        outage.over()
                        if entry is None:
                            if args.empty:
                                self.log.info(
                                    "nothing on the %s queue: exiting (--empty)", self.queue.name
                                )
                                break
                            self.log.debug("nothing on the %s queue; waiting", self.queue.name)
                            self._idle()
                            continue
                    entry = self.process(entry, claim_next=not args.oneshot)
                    if args.oneshot:
                        break
            if entry is not None:  # claimed together with the last completion, then told to stop
                self.log.info("stopping: handing back %s untouched", entry.filename)
                self._release(entry)
        finally:
            self.heartbeat.stop()
            self.registration.stop()
            self.waker.close()
            self._drop_connection()
        if daemon.one_shot:
            self.log.info("summary: %s", self.summary.describe(self._next_ready()))
            return EXIT_FAILURE if self.summary.failed else None
        return None

    def _idle(self) -> None:
        """Wait for work, in slices short enough to keep the systemd watchdog fed."""
        interval = self.daemon.notifier.watchdog_interval
        timeout = self.daemon.config.queue_poll_seconds
        self.waker.wait(min(timeout, interval / 2) if interval else timeout)

    def _next_ready(self) -> datetime | None:
        try:
            with self.daemon.session_factory() as session:
                session.connection(execution_options={"sqlite_begin": "DEFERRED"})
                return self.queue.counts(session).next_deferred
        except Exception as exc:  # noqa: BLE001 - the summary goes out without it
            self.log.debug("no deferred time for the summary: %s", one_line(exc))
            return None

    @contextmanager
    def _autocommit(self) -> Iterator[Connection]:
        """The loop's own connection in autocommit: one round trip per statement, no BEGIN or
        COMMIT, and no pool check-out per entry. Dropped after any error, so a cut connection
        is replaced at the next use."""
        if self._conn is None:
            conn = self.daemon.engine.connect()
            conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        try:
            yield self._conn
        except BaseException:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                conn.invalidate()

    def _claim(self) -> Entry | None:
        """Claim with as few round trips as possible.

        On PostgreSQL each claim statement is atomic by itself, so it runs in autocommit: one
        round trip instead of BEGIN, statement, COMMIT, and a claim that meets the unique
        in-progress index can simply look again. SQLite keeps its BEGIN IMMEDIATE.
        """
        if self._postgresql:
            with self._autocommit() as conn:
                return self.queue.claim(conn, self.worker)
        with self.daemon.session_factory() as session:
            entry = self.queue.claim(session, self.worker)
            session.commit()
            return entry

    def process(self, entry: Entry, *, claim_next: bool = False) -> Entry | None:
        """Run the work on ``entry`` and record the outcome.

        With ``claim_next``, a successful completion also claims the next entry (in the same
        statement on PostgreSQL when the work wrote nothing), which is returned for the loop.
        """
        label = f"{entry.path}/{entry.filename}" if entry.path else entry.filename
        self.log.info("processing %s (attempt %d)", label, entry.attempts)
        self.heartbeat.watch(entry)
        try:
            return self._run_work(entry, label, claim_next)
        except Exception as exc:
            if not is_database_lost(exc):
                raise
            self.log.warning(
                "database lost while processing %s (%s); handing it back", label, one_line(exc)
            )
            self._release(entry)
            return None
        finally:
            self.heartbeat.watch(None)

    def _run_work(self, entry: Entry, label: str, claim_next: bool) -> Entry | None:
        started = time.monotonic()
        # A work that completes its entry in its own statement may lease the next one there
        # too (PostgreSQL), unless the next claim is due to sweep the queue first.
        self.context.claim_for = (
            self.worker
            if claim_next and self._postgresql and not self.queue.sweep_due()
            else None
        )
        with self.daemon.session_factory() as session:
            try:
                with self.limit.running():
                    self.work(session, entry, self.context)
                    session.flush()  # a bad row is the work's error, not the completion's
                completed, following = self._complete(session, entry, claim_next)
            except (Exception, RunTimeExceeded) as exc:
                _, leased = self.context.take_completed(entry)
                if leased is not None:  # the work failed after leasing the next: hand it back
                    self._release(leased)
                if is_database_lost(exc):
                    raise
                if self._rolled_back(session):
                    self._record_failure(session, entry, label, exc)
                else:  # interrupted mid-statement: its connection is dropped, not reused
                    with self.daemon.session_factory() as fresh:
                        self._record_failure(fresh, entry, label, exc)
                return None
            if completed:
                self.summary.processed += 1
                self.stats.record_processed(time.monotonic() - started)
            else:
                self.log.warning(
                    "%s: lease lost while processing (another worker took it "
                    "over); this pass was discarded",
                    label,
                )
            return following

    @staticmethod
    def _rolled_back(session: Session) -> bool:
        """Roll back; False (and the connection thrown away) if that fails, as after a work
        interrupted by ``RunTimeExceeded`` in the middle of a statement."""
        try:
            session.rollback()
            return True
        except Exception:  # noqa: BLE001 - the connection is in no state to be reused
            session.invalidate()
            return False

    def _record_failure(
        self, session: Session, entry: Entry, label: str, exc: BaseException
    ) -> None:
        """Retry (a transient error, or a database error that is not a lost connection) or
        fail the entry, keeping the error and its traceback."""
        tb = "".join(traceback.format_exception(exc))
        if isinstance(exc, TransientError | DBAPIError):
            transient = exc if isinstance(exc, TransientError) else TransientError(one_line(exc))
            retried = self.queue.retry(
                session,
                entry,
                one_line(exc),
                tb,
                delay=transient.delay,
                counts=transient.counts,
                alike=transient.alike,
            )
            session.commit()
            if transient.alike and self._postgresql:
                self._reclaim_after_parking()
            if retried:
                self.summary.deferred += 1
                self.stats.record_retried()
                level = logging.DEBUG if transient.quiet else logging.WARNING
                self.log.log(level, "%s: %s (will retry)", label, one_line(exc))
            else:
                self.summary.failed += 1
                self.stats.record_failed()
                self.log.error("%s: %s (attempts exhausted: failed)", label, one_line(exc))
            return
        self.queue.fail(session, entry, one_line(exc), tb)
        session.commit()
        self.summary.failed += 1
        self.stats.record_failed()
        self.log.error("%s failed: %s", label, one_line(exc))

    def _reclaim_after_parking(self) -> None:
        try:
            with self._autocommit() as conn:
                if self.queue.reclaim_after_parking(conn):
                    self.log.info("vacuumed %s after parking entries", self.queue.name)
        except Exception as exc:  # noqa: BLE001 - autovacuum will do it later
            if is_database_lost(exc):
                raise
            self.log.warning("could not vacuum %s: %s", self.queue.name, one_line(exc))

    def _complete(
        self, session: Session, entry: Entry, claim_next: bool
    ) -> tuple[bool, Entry | None]:
        """Complete in the work's transaction and commit; on PostgreSQL the next claim then
        runs in autocommit. A work that never touched the database has nothing to share a
        transaction with: PostgreSQL completes and claims in one autocommit statement."""
        claim_next = claim_next and not self.daemon.stopping.is_set()
        completed, leased = self.context.take_completed(entry)
        if completed:  # with the work's own rows, and perhaps the next entry leased there
            session.rollback()
            if leased is not None:
                return True, leased  # handed back by the loop if a stop came meanwhile
            return True, self._claim() if claim_next else None
        if self._postgresql and not session.in_transaction():
            with self._autocommit() as conn:
                if claim_next:
                    return self.queue.complete_and_claim(conn, entry, self.worker)
                return self.queue.complete(conn, entry), None
        if self._postgresql:
            completed = self.queue.complete(session, entry)
            following = None
        else:
            completed, following = (
                self.queue.complete_and_claim(session, entry, self.worker)
                if claim_next
                else (self.queue.complete(session, entry), None)
            )
        if not completed:
            session.rollback()
            return False, None
        session.commit()
        if self._postgresql and claim_next:
            following = self._claim()
        return True, following

    def _release(self, entry: Entry) -> None:
        """Hand an entry back untouched (after a database outage, or claimed together with the
        last completion just as a stop was asked for); if that fails too, its lease expires."""
        for attempt in range(1, 4):
            try:
                with self.daemon.session_factory() as session:
                    self.queue.release(session, entry)
                    session.commit()
                return
            except Exception as exc:
                if not is_database_lost(exc):
                    raise
                if not self.daemon.sleep(DB_RETRY.delay(attempt)):
                    return


class RunLimit:
    """Stops a work that runs past ``queue_max_run_seconds`` by raising ``RunTimeExceeded`` in
    the main thread from a SIGALRM handler; that interrupts a blocking open, read or sleep (a
    FIFO, a stalled socket). Outside the main thread signals cannot be used, and the heartbeat
    thread's last resort is all there is."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._armed = False
        self._statement_on: Any = None  # the DBAPI connection of the main thread's statement

    @contextmanager
    def installed(self, engine: Engine) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGALRM, self._on_alarm)
        event.listen(engine, "before_cursor_execute", self._statement_starts)
        event.listen(engine, "after_cursor_execute", self._statement_ends)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            event.remove(engine, "before_cursor_execute", self._statement_starts)
            event.remove(engine, "after_cursor_execute", self._statement_ends)

    def _statement_starts(self, conn: Connection, *_: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            self._statement_on = conn.connection.dbapi_connection

    def _statement_ends(self, *_: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            self._statement_on = None

    def _cancel_statement(self) -> None:
        """Stop on the server a statement the limit interrupts: the client lets go of its
        connection, but left running the statement would hold its locks, and a snapshot that
        keeps vacuum from cleaning any table, for as long as it lasts."""
        cancel = getattr(self._statement_on, "cancel", None)  # psycopg: on a connection of its own
        if cancel is None:
            return
        try:
            cancel()
        except Exception as exc:  # noqa: BLE001 - nothing more can be done from here
            logging.getLogger(__name__).warning("could not cancel the statement: %s", exc)

    @contextmanager
    def running(self) -> Iterator[None]:
        usable = signal.getsignal(signal.SIGALRM) == self._on_alarm
        if usable:
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            yield
        finally:
            if usable:
                self._armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)

    def _on_alarm(self, _signum: int, _frame: Any) -> None:
        if self._armed:
            self._armed = False
            self._cancel_statement()
            raise RunTimeExceeded(f"ran longer than {self.seconds:g}s (queue_max_run_seconds)")


class Heartbeat(threading.Thread):
    """Keeps the lease of the entry in hand alive while its work runs within the run-time limit.

    It also feeds systemd's watchdog, but only for that: while a work is in hand and within
    ``queue_max_run_seconds`` (the main loop feeds it otherwise), so ``WatchdogSec`` catches a
    hung loop and a hung work alike. If the work overran and the main thread could not be
    interrupted (an uninterruptible NFS read, a C extension), it fails the entry itself and ends
    the process for systemd to start a fresh one. One thread for the life of the worker, told
    which entry to watch: starting a thread per entry cost more than a claim.
    """

    def __init__(self, queue: Queue, daemon: Daemon) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.queue, self.daemon = queue, daemon
        self.interval = max(0.05, queue.lease_seconds / 3)
        self.give_up_after = queue.max_run_seconds + queue.lease_seconds
        self._entry: Entry | None = None
        self._since = 0.0
        self._lock = threading.Lock()
        self._finished = threading.Event()

    def watch(self, entry: Entry | None) -> None:
        with self._lock:
            self._entry = entry
            self._since = time.monotonic()
        if entry is not None:
            self.daemon.notifier.send(f"STATUS=processing {entry.filename}")

    def run(self) -> None:
        while not self._finished.wait(self.interval):
            with self._lock:
                entry, started = self._entry, self._since
            if entry is None:
                continue
            running = time.monotonic() - started
            if running >= self.give_up_after:
                self._end_stuck_worker(entry, running)
            if running < self.queue.max_run_seconds:
                self.daemon.notifier.watchdog()
            try:
                with self.daemon.session_factory() as session:
                    alive = self.queue.heartbeat(session, entry)  # fenced: harmless if late
                    session.commit()
            except Exception as exc:  # noqa: BLE001 - keep trying; the lease may still hold
                self.daemon.logger.warning("heartbeat failed: %s", one_line(exc))
                continue
            if not alive:
                with self._lock:
                    if self._entry is entry:
                        self.daemon.logger.warning("lease on %s lost", entry.filename)
                        self._entry = None

    def _end_stuck_worker(self, entry: Entry, running: float) -> None:
        error = (
            f"ran longer than {self.queue.max_run_seconds:g}s (queue_max_run_seconds) and "
            f"could not be interrupted after {running:.0f}s; its worker was ended"
        )
        self.daemon.notifier.send("STATUS=work overran and could not be interrupted; exiting")
        self.daemon.logger.critical("%s: %s", entry.filename, error)
        try:
            with self.daemon.session_factory() as session:
                self.queue.fail(session, entry, error)
                session.commit()
        except Exception as exc:  # noqa: BLE001 - the other workers' sweep will fail it
            self.daemon.logger.error("could not mark %s failed: %s", entry.filename, one_line(exc))
        for handler in logging.getLogger().handlers + self.daemon.logger.handlers:
            handler.flush()
        os._exit(EXIT_FAILURE)

    def stop(self) -> None:
        self._finished.set()
        self.join(timeout=10)
