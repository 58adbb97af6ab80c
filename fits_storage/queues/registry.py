"""The worker registry: each worker process's row in ``queueworker``, written and read.

A worker registers when it starts, then beats every few seconds with its counters as they stand
(absolute figures, so a late or repeated write is harmless), and marks its row stopped on a clean
exit. A row not stopped whose heartbeat is older than ``DEAD_AFTER_BEATS`` of its own intervals
belongs to a worker that died. Timestamps use the database server's clock, as leases do.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from fits_storage.db.clock import server_now
from fits_storage.orm.workers import QueueWorker
from fits_storage.queues.engine import Worker

# Upper bounds (seconds) of the processing-time histogram; one more bucket, +Inf, follows.
BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
DEAD_AFTER_BEATS = 3


def beat_interval(lease_seconds: float) -> float:
    """How often a worker beats: often enough to be seen alive well within one lease."""
    return min(5.0, max(0.2, lease_seconds / 3))


@dataclass
class WorkerStats:
    """One process's counters, updated by the loop and read by the registry thread."""

    processed: int = 0
    failed: int = 0
    retried: int = 0
    seconds_total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_processed(self, seconds: float) -> None:
        with self._lock:
            self.processed += 1
            self.seconds_total += seconds
            self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1

    def record_failed(self) -> None:
        with self._lock:
            self.failed += 1

    def record_retried(self) -> None:
        with self._lock:
            self.retried += 1

    def carry_over(self, rows: list[Any]) -> None:
        """Start from the figures of earlier processes of this worker (see ``register``)."""
        with self._lock:
            for row in rows:
                self.processed += row.processed
                self.failed += row.failed
                self.retried += row.retried
                self.seconds_total += row.seconds_total
                for i, count in enumerate((row.buckets or [])[: len(self.buckets)]):
                    self.buckets[i] += count

    def figures(self) -> dict[str, Any]:
        """The columns of the row, as they stand now."""
        with self._lock:
            return {
                "processed": self.processed,
                "failed": self.failed,
                "retried": self.retried,
                "seconds_total": self.seconds_total,
                "buckets": list(self.buckets),
            }


def register(
    session: Session, worker: Worker, queue: str, interval: float, stats: WorkerStats
) -> int:
    """Add this process's row; returns its id.

    The rows of this worker's earlier processes on this host that are stopped or dead are
    folded into it (their counters carried over, the rows removed): a worker started by cron
    every few minutes keeps one row, and its counters never go down.
    """
    table = QueueWorker.__table__
    earlier = session.execute(
        delete(table)
        .where(
            table.c.name == worker.name,
            table.c.queue == queue,
            table.c.host == worker.host,
            or_(
                table.c.stopped.is_not(None),
                table.c.heartbeat < server_now(-DEAD_AFTER_BEATS * interval),
            ),
        )
        .returning(
            table.c.processed,
            table.c.failed,
            table.c.retried,
            table.c.seconds_total,
            table.c.buckets,
        )
    ).all()
    stats.carry_over(earlier)
    statement = (
        insert(table)
        .values(
            name=worker.name,
            queue=queue,
            host=worker.host,
            pid=worker.pid,
            started=server_now(),
            heartbeat=server_now(),
            interval_seconds=interval,
            **stats.figures(),
        )
        .returning(table.c.id)
    )
    return session.execute(statement).scalar_one()


def beat(session: Session, row_id: int, stats: WorkerStats, *, stopping: bool = False) -> None:
    """Write the heartbeat and the counters; with ``stopping``, mark the row stopped too."""
    values: dict[str, Any] = {"heartbeat": server_now(), **stats.figures()}
    if stopping:
        values["stopped"] = server_now()
    session.execute(update(QueueWorker).where(QueueWorker.id == row_id).values(**values))


@dataclass(frozen=True)
class WorkerState:
    """A worker row as /health and /metrics show it."""

    name: str
    queue: str
    host: str
    pid: int
    started: datetime
    heartbeat: datetime
    seconds_since_heartbeat: float
    live: bool
    processed: int
    failed: int
    retried: int
    seconds_total: float
    buckets: tuple[int, ...]


def worker_states(session: Session, *, running_only: bool = False) -> list[WorkerState]:
    """Every worker row (or only those not stopped), judged live or dead by the server's clock."""
    statement = select(QueueWorker, server_now()).order_by(QueueWorker.queue, QueueWorker.id)
    if running_only:
        statement = statement.where(QueueWorker.stopped.is_(None))
    states = []
    for row, now in session.execute(statement):
        age = max(0.0, (now - row.heartbeat).total_seconds())
        buckets = list(row.buckets or [])
        buckets += [0] * (len(BUCKETS) + 1 - len(buckets))
        states.append(
            WorkerState(
                name=row.name,
                queue=row.queue,
                host=row.host,
                pid=row.pid,
                started=row.started,
                heartbeat=row.heartbeat,
                seconds_since_heartbeat=age,
                live=row.stopped is None and age <= DEAD_AFTER_BEATS * row.interval_seconds,
                processed=row.processed,
                failed=row.failed,
                retried=row.retried,
                seconds_total=row.seconds_total,
                buckets=tuple(buckets),
            )
        )
    return states


def queue_label(table_name: str) -> str:
    """The short name of a queue (``ingest`` for ``ingestqueue``), as the commands call it."""
    from fits_storage.queues.definitions import DEFINITIONS

    for name, model in DEFINITIONS.items():
        if model.__tablename__ == table_name:  # type: ignore[attr-defined]
            return name
    return table_name
