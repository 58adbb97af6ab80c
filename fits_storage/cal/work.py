"""The calibration cache queue's work: store a frame's calibrations, and when the frame is a
newly ingested calibration, queue the frames whose answer it may change.

Everything happens in the caller's transaction, so the frame's old rows, its new rows and the
re-queued entries commit together with the entry's completion. Only the first association of
a version re-queues others: a frame computed again (re-queued itself, or queued by hand) has
already announced itself, and re-announcing would bounce work between calibrations that
calibrate each other (a flat needs a bias, a science frame needs the flat).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from fits_storage.cal.associate import associate_all, frame_on
from fits_storage.cal.cache import is_stamped, store
from fits_storage.cal.errors import CalCacheError
from fits_storage.cal.requeue import frames_to_requeue
from fits_storage.ingest.source import describe
from fits_storage.orm import utcnow
from fits_storage.queues import Entry

if TYPE_CHECKING:
    from fits_storage.queues import WorkContext


def calcache_work(session: Session, entry: Entry, context: WorkContext) -> None:
    label = describe(entry.path, entry.filename)
    frame = frame_on(session, entry.filename, entry.path)
    if frame is None:
        raise CalCacheError(f"{label}: no present version in the database (not ingested?)")
    first = not is_stamped(session, frame.id)
    computed = utcnow()
    answer = associate_all(session, frame.fields)
    rows = store(session, frame.id, answer, computed)
    summary = ", ".join(f"{caltype} {len(found)}" for caltype, found in answer.items())
    context.logger.info(
        "%s: %d calibration(s) stored (%s)", label, rows, summary or "needs none"
    )
    if not first:
        return
    affected = [(f.stored_name, f.path) for f in frames_to_requeue(session, frame)]
    if affected:
        queue = context.queue("calcache")
        added = queue.add_many(session, ({"filename": n, "path": p} for n, p in affected))
        context.logger.info(
            "%s: %d frame(s) whose calibrations it may change re-queued (%d already waiting)",
            label,
            len(affected),
            len(affected) - added,
        )
