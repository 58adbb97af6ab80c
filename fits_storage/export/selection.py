"""Queueing files to (re-)export, one entry per destination."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.orm import Session

from fits_storage.queues import Queue


def queue_exports(
    session: Session,
    queue: Queue,
    files: Iterable[tuple[str, str]],
    destinations: Sequence[str],
) -> int:
    """Queue every file for every destination; returns how many entries were new.

    This is also what ingest calls for a newly ingested file on a server with
    ``export_destinations``.
    """
    rows = (
        {"filename": filename, "path": path, "destination": destination}
        for filename, path in files
        for destination in destinations
    )
    return queue.add_many(session, rows)
