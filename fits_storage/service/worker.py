"""The queue worker loop shared by every ``service_*_queue`` command.

A worker is the queue engine + one work function + this loop. The loop claims an entry, keeps
its lease alive from a heartbeat thread while the work runs, then records the outcome:

* the work returns: the entry is completed in the same transaction as the work's own writes;
* it raises ``TransientError``: retried later with backoff (until ``queue_max_attempts``);
* it raises anything else: failed, with a one-line error and the full traceback kept;
* the database goes away: the entry is handed back (or, failing that, its lease simply
  expires) and the loop retries the connection with backoff instead of crash-looping.
"""

from __future__ import annotations

import argparse
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.queues import Entry, Queue, TransientError, Worker, get_queue
from fits_storage.queues.engine import Backoff
from fits_storage.queues.notify import Waker
from fits_storage.service.daemon import Daemon, run_daemon

DB_RETRY = Backoff(base_seconds=1.0, cap_seconds=60.0)


@dataclass
class WorkContext:
    """What a work function may use besides its session and entry."""

    daemon: Daemon
    worker: Worker
    _queues: dict[str, Queue] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return self.daemon.config

    @property
    def logger(self) -> logging.Logger:
        return self.daemon.logger

    @property
    def args(self) -> argparse.Namespace:
        return self.daemon.args

    @property
    def stopping(self) -> threading.Event:
        return self.daemon.stopping

    @property
    def session_factory(self) -> sessionmaker[Session]:
        return self.daemon.session_factory

    def queue(self, name: str) -> Queue:
        if name not in self._queues:
            self._queues[name] = get_queue(name, self.config)
        return self._queues[name]


WorkFunction = Callable[[Session, Entry, WorkContext], None]


def is_database_lost(exc: BaseException) -> bool:
    """Connection-level trouble (server gone, connection cut, SQLite busy beyond the timeout)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class DatabaseOutage:
    """A daemon loop's run of lost-database failures: back off with one warning each, and say
    once when the database is back."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.failures = 0

    def back_off(self, exc: BaseException) -> bool:
        """Wait before the next try if ``exc`` is a lost database; False (re-raise) otherwise."""
        if not is_database_lost(exc):
            return False
        self.failures += 1
        delay = DB_RETRY.delay(self.failures)
        self.daemon.logger.warning(
            "database unavailable (%s); retrying in %.1fs", one_line(exc), delay
        )
        self.daemon.sleep(delay)
        return True

    def over(self) -> None:
        if self.failures:
            self.daemon.logger.info("database connection restored")
            self.failures = 0


def run_queue_service(
    command: str,
    queue_name: str,
    work: WorkFunction,
    *,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: list[str] | None = None,
) -> int:
    """The whole life of a ``service_*_queue`` command."""

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--empty", action="store_true", help="exit when the queue has nothing ready to process"
        )
        parser.add_argument("--oneshot", action="store_true", help="process one entry, then exit")
        if add_arguments:
            add_arguments(parser)

    def body(daemon: Daemon) -> int | None:
        return QueueLoop(daemon, get_queue(queue_name, daemon.config), work).run()

    return run_daemon(command, description, body, add_arguments=arguments, argv=argv)


class QueueLoop:
    def __init__(self, daemon: Daemon, queue: Queue, work: WorkFunction) -> None:
        self.daemon = daemon
        self.queue = queue
        self.work = work
        self.log = daemon.logger
        self.worker = Worker(f"{daemon.command}-{daemon.name}")
        self.context = WorkContext(daemon, self.worker)
        self.waker = Waker(daemon.config.database_url, queue.channel, daemon.stopping)
        self.heartbeat = Heartbeat(queue, daemon)
        self._conn: Connection | None = None

    def run(self) -> int | None:
        daemon, args = self.daemon, self.daemon.args
        daemon.notifier.ready()
        self.heartbeat.start()
        outage = DatabaseOutage(daemon)
        entry: Entry | None = None
        try:
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
                        self.waker.wait(daemon.config.queue_poll_seconds)
                        continue
                entry = self.process(entry, claim_next=not args.oneshot)
                if args.oneshot:
                    break
            if entry is not None:  # claimed together with the last completion, then told to stop
                self.log.info("stopping: handing back %s untouched", entry.filename)
                self._release(entry)
        finally:
            self.heartbeat.stop()
            self.waker.close()
            self._drop_connection()
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
        round trip instead of BEGIN, statement, COMMIT. SQLite keeps its BEGIN IMMEDIATE.
        """
        if self.daemon.engine.dialect.name == "postgresql":
            with self._autocommit() as conn:
                return self.queue.claim(conn, self.worker)
        with self.daemon.session_factory() as session:
            entry = self.queue.claim(session, self.worker)
            session.commit()
            return entry

    def process(self, entry: Entry, *, claim_next: bool = False) -> Entry | None:
        """Run the work on ``entry`` and record the outcome.

        With ``claim_next``, a successful completion also claims the next entry in the same
        transaction (one round trip on PostgreSQL), which is returned for the loop to process.
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
        with self.daemon.session_factory() as session:
            try:
                self.work(session, entry, self.context)
            except TransientError as exc:
                session.rollback()
                retried = self.queue.retry(
                    session,
                    entry,
                    one_line(exc),
                    traceback.format_exc(),
                    delay=exc.delay,
                    counts=exc.counts,
                )
                session.commit()
                if retried:
                    level = logging.DEBUG if exc.quiet else logging.WARNING
                    self.log.log(level, "%s: %s (will retry)", label, exc)
                else:
                    self.log.error("%s: %s (attempts exhausted: failed)", label, exc)
                return None
            except Exception as exc:
                if is_database_lost(exc):
                    raise
                session.rollback()
                self.queue.fail(session, entry, one_line(exc), traceback.format_exc())
                session.commit()
                self.log.error("%s failed: %s", label, one_line(exc))
                return None
            completed, following = self._complete(session, entry, claim_next)
            if not completed:
                self.log.warning(
                    "%s: lease lost while processing (another worker took it "
                    "over); this pass was discarded",
                    label,
                )
            return following

    def _complete(
        self, session: Session, entry: Entry, claim_next: bool
    ) -> tuple[bool, Entry | None]:
        """Complete in the work's transaction; if the work never touched the database there is
        nothing to share a transaction with, and PostgreSQL completes in autocommit."""
        claim_next = claim_next and not self.daemon.stopping.is_set()
        autocommit = (
            not session.in_transaction() and self.daemon.engine.dialect.name == "postgresql"
        )
        with self._autocommit() if autocommit else nullcontext(session) as executor:
            if claim_next:
                completed, following = self.queue.complete_and_claim(executor, entry, self.worker)
            else:
                completed, following = self.queue.complete(executor, entry), None
        if not autocommit:
            if completed:
                session.commit()
            else:
                session.rollback()
        return completed, following

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


class Heartbeat(threading.Thread):
    """Keeps the lease of the entry in hand alive (and feeds systemd's watchdog).

    One thread for the life of the worker, told which entry to watch: starting a thread per
    entry cost more than a claim.
    """

    def __init__(self, queue: Queue, daemon: Daemon) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.queue, self.daemon = queue, daemon
        self.interval = max(0.05, queue.lease_seconds / 3)
        self._entry: Entry | None = None
        self._lock = threading.Lock()
        self._finished = threading.Event()

    def watch(self, entry: Entry | None) -> None:
        with self._lock:
            self._entry = entry

    def run(self) -> None:
        while not self._finished.wait(self.interval):
            self.daemon.notifier.watchdog()
            with self._lock:
                entry = self._entry
            if entry is None:
                continue
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

    def stop(self) -> None:
        self._finished.set()
        self.join(timeout=10)
