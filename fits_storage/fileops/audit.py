"""The ``updatelog`` row's md5 after, learnt after the edit rather than taken during it.

An edit does not hash the bytes it writes (that would cost more than copying them). The first
to read them fills the md5 in: the ingest the edit queues (it reads every byte and records
their md5 in the new version) or, if another edit of the file comes first, that edit's md5
before. Imported by ingest: keep it free of the fileops machinery.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from fits_storage.orm import UpdateLog


def record_md5_after(session: Session, filename: str, path: str, md5: str) -> None:
    """``md5`` is that of ``path/filename`` as it is now: give it, as their md5 after, to the
    header edits applied to the file that still lack one (in the caller's transaction)."""
    session.execute(
        update(UpdateLog)
        .where(
            UpdateLog.filename == filename,
            UpdateLog.path == path,
            UpdateLog.applied.is_not(None),
            UpdateLog.md5_after.is_(None),
        )
        .values(md5_after=md5)
        .execution_options(synchronize_session=False)
    )
