"""Each queue's figures for monitoring (/health, /metrics, check_queues), cheaply.

One statement per queue of scalar subqueries, each with a condition matching one of the
queue table's partial indexes, so none of them reads the rows of the other states.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Select, Table, func, or_, select
from sqlalchemy.orm import Session

from fits_storage.db.clock import server_now
from fits_storage.queues.definitions import DEFINITIONS
from fits_storage.queues.status import Status


@dataclass(frozen=True)
class QueueOverview:
    name: str
    depth: int  # waiting, ready or deferred
    ready: int  # waiting and due now
    in_progress: int
    failed: int
    oldest_waiting_seconds: float | None  # age of the oldest waiting entry


@cache
def _statement(table: Table) -> Select:
    def count(*conditions) -> Select:  # type: ignore[no-untyped-def]
        return select(func.count()).select_from(table).where(*conditions).scalar_subquery()

    waiting = table.c.status == Status.WAITING.value
    due = or_(table.c.after.is_(None), table.c.after <= server_now())
    oldest = select(func.min(table.c.added)).where(waiting).scalar_subquery()
    return select(
        count(waiting),
        count(waiting, due),
        count(table.c.status == Status.IN_PROGRESS.value),
        count(table.c.status == Status.FAILED.value),
        oldest,
        server_now(),
    )


def queue_overview(session: Session, name: str) -> QueueOverview:
    table: Table = DEFINITIONS[name].__table__  # type: ignore[attr-defined]
    depth, ready, in_progress, failed, oldest, now = session.execute(_statement(table)).one()
    if isinstance(oldest, str):  # SQLite hands back a min() of a DateTime column as text
        oldest = datetime.fromisoformat(oldest)
    age = None if oldest is None else max(0.0, (now - oldest).total_seconds())
    return QueueOverview(name, depth, ready, in_progress, failed, age)


def all_queues(session: Session) -> list[QueueOverview]:
    return [queue_overview(session, name) for name in DEFINITIONS]
