"""Each queue's figures for monitoring (/health, /metrics, check_queues).

The counts are the queue engine's own (``Queue.counts``, the status page's figures); on top of
them one cheap statement says whether the queue has work due now, read from the claim and
deferred indexes, and gives the database server's time to age the oldest entry by.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import Select, Table, exists, select
from sqlalchemy.orm import Session

from fits_storage.db.clock import server_now
from fits_storage.queues.definitions import DEFINITIONS
from fits_storage.queues.engine import Queue
from fits_storage.queues.status import Status


@dataclass(frozen=True)
class QueueOverview:
    name: str
    depth: int  # waiting, ready or deferred
    deferred: int  # of the waiting ones, held back until their ``after``
    in_progress: int
    failed: int
    oldest_waiting_seconds: float | None  # age of the oldest waiting entry
    has_work: bool  # an entry is due now: ready, or deferred and past its time
    estimated: tuple[str, ...] = ()  # counts that are estimates (see ``QueueCounts``)


@cache
def _due(table: Table) -> Select:
    waiting = table.c.status == Status.WAITING.value
    ready = exists().where(waiting, table.c.after.is_(None))
    overdue = exists().where(waiting, table.c.after.is_not(None), table.c.after <= server_now())
    return select(ready, overdue, server_now())


def queue_overview(session: Session, name: str) -> QueueOverview:
    queue = Queue(DEFINITIONS[name])
    counts = queue.counts(session)
    ready, overdue, now = session.execute(_due(queue.table)).one()
    oldest = counts.oldest_waiting
    age = None if oldest is None else max(0.0, (now - oldest).total_seconds())
    return QueueOverview(
        name=name,
        depth=counts.waiting,
        deferred=counts.deferred,
        in_progress=counts.in_progress,
        failed=counts.failed,
        oldest_waiting_seconds=age,
        has_work=bool(ready or overdue),
        estimated=tuple(getattr(counts, "estimated", ())),
    )


def all_queues(session: Session) -> list[QueueOverview]:
    return [queue_overview(session, name) for name in DEFINITIONS]
