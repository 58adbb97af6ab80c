"""Waking idle workers as soon as work is added.

PostgreSQL: one dedicated autocommit connection LISTENs on the queue's channel; ``Queue.add``
sends NOTIFY in the adding transaction. The connection is re-established after any loss (and
the caller is told to look at the queue, since a notification may have been missed meanwhile).
A connection that cannot be made (or LISTEN that fails) is tried again after a short backoff, not
after a whole poll interval: the worker polls meanwhile, and is woken by NOTIFY again as soon as
the server lets it listen.
SQLite: plain polling every ``poll_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from fits_storage.queues.engine import Backoff

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)
STOP_LATENCY = 0.5
RELISTEN = Backoff(base_seconds=0.5, cap_seconds=30.0)


def psycopg_conninfo(url: str) -> str:
    """The libpq URI of a SQLAlchemy PostgreSQL URL (any driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Waker:
    """``wait(timeout)`` returns when work may have been added, or after ``timeout``."""

    def __init__(self, database_url: str, channel: str, stopping: threading.Event | None = None):
        self.channel = channel
        self.stopping = stopping or threading.Event()
        backend = make_url(database_url).get_backend_name()
        self.conninfo = psycopg_conninfo(database_url) if backend == "postgresql" else None
        self.conn: psycopg.Connection | None = None
        self.failures = 0  # consecutive failures to LISTEN

    def _connect(self) -> None:
        import psycopg  # here: a worker on SQLite never needs the driver

        assert self.conninfo is not None
        conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
        try:
            conn.execute(f'LISTEN "{self.channel}"')
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def wait(self, timeout: float) -> bool:
        """True if notified (or if notifications may have been missed); False on timeout."""
        if self.conninfo is None:
            self.stopping.wait(timeout)
            return False
        import psycopg

        if self.conn is None or self.conn.closed:
            try:
                self._connect()
            except psycopg.Error as exc:
                self.failures += 1
                if self.failures == 1:
                    log.warning("cannot LISTEN for new work (%s); polling until it can", exc)
                self.stopping.wait(min(timeout, RELISTEN.delay(self.failures)))
                return True  # polling: the caller looks at the queue
            if self.failures:
                log.info("listening for new work again after %d failed tries", self.failures)
                self.failures = 0
            return True  # anything added while we were not listening must be looked at
        try:
            notified = False
            deadline = time.monotonic() + timeout
            # Short slices, so a stop request (SIGTERM) is seen within STOP_LATENCY seconds.
            while not notified and not self.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                for _ in self.conn.notifies(timeout=min(remaining, STOP_LATENCY), stop_after=1):
                    notified = True
            if notified:  # drain the rest of a burst without waiting
                for _ in self.conn.notifies(timeout=0):
                    pass
            return notified
        except psycopg.Error as exc:
            log.warning("lost the LISTEN connection (%s); reconnecting", exc)
            self.close()
            self.stopping.wait(min(timeout, 1.0))
            return True

    def close(self) -> None:
        if self.conn is not None:
            import psycopg

            try:
                self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None
