"""What the status page reads of a queue, and what staff may do to its failed entries.

Kept apart from the engine: workers never call these. Each function takes a session and never
commits; the caller writes its audit row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fits_storage.db.clock import server_now
from fits_storage.queues import statements as sql
from fits_storage.queues.engine import COUNT_CAP, Queue, QueueCounts, _dialect_name


def overview(
    queues: Sequence[Queue], session: Session | Connection, rows: int
) -> tuple[datetime, dict[str, tuple[QueueCounts, dict[str, list[dict]]]]]:
    """What a status page shows of each queue, in one round trip for the counts of all and one
    per queue for its lists: the database's time now, and per queue its counts and the first
    ``rows`` ready entries in the order workers take them (then deferred ones), the newest
    failures, and those in progress."""
    columns: list = [server_now().label("now")]
    for i, queue in enumerate(queues):
        counts = sql.counts(queue.table, COUNT_CAP)
        columns += [c.element.label(f"q{i}_{c.name}") for c in counts.selected_columns]
    head = session.execute(select(*columns)).one()._mapping
    now = head["now"]
    if isinstance(now, str):  # SQLite gives its text form
        now = datetime.fromisoformat(now)
    lists = _lists(queues, session, rows)
    shown = {}
    for i, queue in enumerate(queues):
        prefix = f"q{i}_"
        own = {k[len(prefix) :]: v for k, v in head.items() if k.startswith(prefix)}
        shown[queue.name] = (queue.counts_from(session, own), lists[i])
    return now, shown


def _lists(
    queues: Sequence[Queue], session: Session | Connection, rows: int
) -> list[dict[str, list[dict]]]:
    found: list[dict[str, list[dict]]] = [
        {p: [] for p in ("ready", "deferred", "failed", "in_progress")} for _ in queues
    ]
    statement = sql.listing(tuple(queue.table for queue in queues))
    for row in session.execute(statement, {"limit": rows}):
        entry = dict(row._mapping)
        own = queues[entry.pop("queue")].table.c
        found[int(row.queue)][entry.pop("part")].append(
            {k: v for k, v in entry.items() if k in own}
        )
    return [_ordered(parts, rows) for parts in found]


def _ordered(parts: dict[str, list[dict]], rows: int) -> dict[str, list[dict]]:
    parts["ready"].sort(key=lambda e: (e["sortkey"], e["id"]), reverse=True)
    parts["deferred"].sort(key=lambda e: (e["after"], e["id"]))
    parts["failed"].sort(key=lambda e: (e["failed_at"] or datetime.min, e["id"]), reverse=True)
    parts["in_progress"].sort(key=lambda e: (e["claimed_at"] or datetime.min, e["id"]))
    return {
        "waiting": (parts["ready"] + parts["deferred"])[:rows],
        "failed": parts["failed"],
        "in_progress": parts["in_progress"],
    }


def listed(queue: Queue, session: Session | Connection, rows: int) -> dict[str, list[dict]]:
    """One queue's lists, as ``overview`` gives them."""
    return _lists([queue], session, rows)[0]


def get_entry(queue: Queue, session: Session, entry_id: int) -> Mapping | None:
    """One entry with every column (the traceback too), or None."""
    row = session.execute(sql.get_entry(queue.table), {"entry_id": entry_id}).first()
    return None if row is None else dict(row._mapping)


def retry_failed(queue: Queue, session: Session, entry_id: int) -> bool:
    """A staff retry: the failed entry waits again (attempts from 0). If the file already has a
    waiting entry, the failure is dropped instead: that entry stands for it. False when there
    is no such failed entry (already retried or removed)."""
    try:
        with session.begin_nested():
            if session.execute(
                sql.retry_failed(queue.table, queue.key), {"entry_id": entry_id}
            ).rowcount:
                _wake(queue, session)
                return True
    except IntegrityError:
        pass  # the file was added at this very moment: that entry covers it
    covered = sql.drop_covered_failures(queue.table, queue.key, True)
    return session.execute(covered, {"entry_id": entry_id}).rowcount == 1


def retry_all_failed(queue: Queue, session: Session) -> int:
    """Every failed file of the queue waits again; returns how many failures were settled."""
    retried = session.execute(sql.retry_all_failed(queue.table, queue.key)).rowcount
    dropped = session.execute(sql.drop_covered_failures(queue.table, queue.key, False)).rowcount
    if retried:
        _wake(queue, session)
    return retried + dropped


def remove_failed(queue: Queue, session: Session, entry_id: int) -> bool:
    """Delete one failed entry; False when it is not (or no longer) a failed entry."""
    return session.execute(sql.remove_failed(queue.table), {"entry_id": entry_id}).rowcount == 1


def _wake(queue: Queue, session: Session) -> None:
    if _dialect_name(session) == "postgresql":
        session.execute(sql.notify(), {"channel": queue.channel})
