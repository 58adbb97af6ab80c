"""Choosing present files for ``add_to_preview_queue`` and queueing them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, exists
from sqlalchemy.orm import Session

from fits_storage.orm import DiskFile, Preview, PreviewNote
from fits_storage.queues import Queue
from fits_storage.scan.present import PresentSelection


@dataclass(frozen=True)
class PreviewSelection(PresentSelection):
    """Without ``force`` only versions with no preview (and no note saying why none)."""

    force: bool = False

    def restrict(self, query: Select) -> Select:
        if self.force:
            return query
        return query.where(
            ~exists().where(Preview.diskfile_id == DiskFile.id),
            ~exists().where(PreviewNote.diskfile_id == DiskFile.id),
        )


def queue_previews(
    session: Session, queue: Queue, files: list[tuple[str, str]], force: bool = False
) -> int:
    """Queue each file for its previews; returns how many entries were new."""
    rows = ({"filename": f, "path": p, "force": force} for f, p in files)
    return queue.add_many(session, rows)
