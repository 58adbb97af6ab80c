"""Choosing present files for ``add_to_preview_queue`` and queueing them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from fits_storage.orm import DiskFile, Header, Preview, PreviewNote, utcnow
from fits_storage.queues import Queue


@dataclass(frozen=True)
class PreviewSelection:
    """Present files by exact name(s), a regex searched in the name, a path, and/or ingested
    in the last ``lastdays`` days. Without ``force`` only versions with no preview (and no
    note saying why none) are selected."""

    filenames: tuple[str, ...] = ()
    file_re: re.Pattern[str] | None = None
    path: str | None = None
    lastdays: float | None = None
    force: bool = False

    def files(self, session: Session) -> Iterator[tuple[str, str]]:
        """(filename, path) of every present diskfile selected, newest names first."""
        # Only FITS versions (those with a header row): observing logs and miscfiles have none.
        query = select(DiskFile.filename, DiskFile.path).where(
            DiskFile.present, exists().where(Header.diskfile_id == DiskFile.id)
        )
        if self.filenames:
            query = query.where(DiskFile.filename.in_(self.filenames))
        if self.path is not None:
            query = query.where(DiskFile.path == self.path.strip("/"))
        if self.lastdays is not None:
            query = query.where(DiskFile.entrytime >= utcnow() - timedelta(days=self.lastdays))
        if not self.force:
            query = query.where(
                ~exists().where(Preview.diskfile_id == DiskFile.id),
                ~exists().where(PreviewNote.diskfile_id == DiskFile.id),
            )
        seen: set[tuple[str, str]] = set()
        for filename, path in session.execute(query.order_by(DiskFile.filename.desc())):
            if self.file_re is not None and not self.file_re.search(filename):
                continue
            if (filename, path) not in seen:
                seen.add((filename, path))
                yield filename, path


def queue_previews(
    session: Session, queue: Queue, files: list[tuple[str, str]], force: bool = False
) -> int:
    """Queue each file for its previews; returns how many entries were new."""
    rows = ({"filename": f, "path": p, "force": force} for f, p in files)
    return queue.add_many(session, rows)
