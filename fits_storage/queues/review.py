"""What the status page reads of a queue, and what staff may do to its failed entries.

Kept apart from the engine: workers never call these. Each function takes a session and never
commits; the caller writes its audit row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fits_storage.queues import statements as sql
from fits_storage.queues.engine import Queue, _dialect_name


def listed(queue: Queue, session: Session | Connection, rows: int) -> dict[str, list[Mapping]]:
    """What a status page shows of a queue: the first ``rows`` ready entries in the order
    workers take them (then deferred ones), the newest failures, and those in progress."""
    params = {"limit": rows}
    ready = [dict(r._mapping) for r in session.execute(sql.list_ready(queue.table), params)]
    if len(ready) < rows:
        params = {"limit": rows - len(ready)}
        ready += [dict(r._mapping) for r in session.execute(sql.list_deferred(queue.table), params)]
    return {
        "waiting": ready,
        "failed": [
            dict(r._mapping) for r in session.execute(sql.list_failed(queue.table), {"limit": rows})
        ],
        "in_progress": [
            dict(r._mapping)
            for r in session.execute(sql.list_in_progress(queue.table), {"limit": rows})
        ],
    }


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
