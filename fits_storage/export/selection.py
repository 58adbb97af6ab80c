"""Choosing files to (re-)export and queueing them, one entry per destination."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fits_storage.orm.file import DiskFile
from fits_storage.queues import Queue


@dataclass(frozen=True)
class ExportSelection:
    """Present files by exact name(s), a regex searched in the name, and/or a path."""

    filenames: tuple[str, ...] = ()
    file_re: re.Pattern[str] | None = None
    path: str | None = None

    def files(self, session: Session) -> Iterator[tuple[str, str]]:
        """(filename, path) of every present diskfile selected, newest names first."""
        query = select(DiskFile.filename, DiskFile.path).where(DiskFile.present)
        if self.filenames:
            query = query.where(DiskFile.filename.in_(self.filenames))
        if self.path is not None:
            query = query.where(DiskFile.path == self.path.strip("/"))
        seen: set[tuple[str, str]] = set()
        for filename, path in session.execute(query.order_by(DiskFile.filename.desc())):
            if self.file_re is not None and not self.file_re.search(filename):
                continue
            if (filename, path) not in seen:
                seen.add((filename, path))
                yield filename, path


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
