"""Move one staged upload into the data store and queue it for ingest (``ingest_uploaded_file``).

The web process only stages; this worker owns the data store. Every step can be interrupted
and run again:

1. ``staging/<path>/<f>`` is renamed to ``staging/<path>/.<f>.storing``, so that a newer upload
   of the same name (which the web app renames onto ``<f>``) is never deleted by us. The
   work holds the name's upload lock (:func:`lock_upload_name`) until it commits, as the web app
   does from its rename to the commit of its log row: so the log rows of the claimed bytes are
   committed and seen, and log order is the order of the renames (the last writer is the last
   row);
2. a compressed upload, which the web app checked only as far as its first header, is checked
   whole (``fitsstream.check_file``, bounded by ``max_uncompressed_bytes``): bad bytes fail the
   entry and never replace the stored file; then the claimed file is stored (local tree or S3)
   and verified; a store that already holds those bytes is a no-op;
3. the ingest entry is added and the ``fileuploadlog`` rows of those bytes marked stored;
4. the claimed file is removed — before the runner commits, so a crash between the two leaves no
   staged file but a stored one, which a re-run recognises from the unstored log rows and
   finishes (step 3 only).
"""

from __future__ import annotations

import hashlib
import logging
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.orm import FileUploadLog, utcnow
from fits_storage.queues import Entry, PermanentError, TransientError, get_queue
from fits_storage.storage import (
    BadName,
    Md5Mismatch,
    StorageUnavailable,
    Store,
    StoredFile,
    get_store,
    relative_name,
    staged_path,
)
from fits_storage.storage.base import fsync_dir
from fits_storage.upload.fitsstream import (
    NotFits,
    check_file,
    is_checked_as_fits,
    is_compressed,
)

if TYPE_CHECKING:
    from fits_storage.queues import WorkContext


class StoreOutcome(StrEnum):
    STORED = "stored"  # staged bytes copied into the store and queued for ingest
    RECOVERED = "recovered"  # an earlier run stored them but did not get to record it
    NOTHING_TO_DO = "nothing to do"  # already stored and recorded (a duplicate entry)


def lock_upload_name(conn: Connection | Session, filename: str, path: str) -> None:
    """Hold, until the transaction ends, the lock that orders everything done to the staged
    upload ``path/filename``: a PostgreSQL advisory lock on the name (other names go on), on
    SQLite the database's write lock (``BEGIN IMMEDIATE``, taken by the first statement)."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    if bind.dialect.name == "postgresql":
        digest = hashlib.blake2b(f"{path}/{filename}".encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        conn.execute(text("SELECT 1"))


def claimed_path(staged: Path) -> Path:
    return staged.with_name(f".{staged.name}.storing")


def mark_stored(session: Session, filename: str, path: str, stored: StoredFile) -> int:
    """Mark the unstored upload rows of these bytes stored, and older unstored rows with other
    bytes superseded; returns how many rows had these bytes."""
    rows = session.scalars(
        select(FileUploadLog)
        .where(
            FileUploadLog.filename == filename,
            FileUploadLog.path == path,
            FileUploadLog.stored.is_(None),
        )
        .order_by(FileUploadLog.id)
    ).all()
    matching = [r for r in rows if r.md5 == stored.md5 and r.size == stored.size]
    if not matching:
        return 0
    now = utcnow()
    for row in matching:
        row.stored, row.ok = now, True
    for row in rows:
        if row.id < matching[-1].id and row.ok is None and row not in matching:
            row.ok, row.notes = False, "superseded by a later upload of the same name"
    return len(matching)


def store_upload(
    session: Session,
    config: Config,
    filename: str,
    path: str = "",
    *,
    store: Store | None = None,
    logger: logging.Logger | None = None,
) -> StoreOutcome:
    """Store the staged upload ``path/filename`` and queue it for ingest (see module doc).

    Raises StorageUnavailable/Md5Mismatch/OSError when the store or disk let us down (worth a
    retry) and PermanentError when there is neither a staged file nor a stored one.
    """
    log = logger or logging.getLogger("ingest_uploaded_file")
    store = store or get_store(config)
    staged = staged_path(config, filename, path)
    claimed = claimed_path(staged)
    label = relative_name(filename, path)
    ingest = get_queue("ingest", config)

    lock_upload_name(session, filename, path)  # held until the work commits
    if staged.exists():
        os.replace(staged, claimed)  # a claimed file left by a crash is superseded
        fsync_dir(claimed.parent)
    if claimed.exists():
        if problem := store.clash(filename, path):
            raise PermanentError(f"cannot store {label}: {problem}")
        if is_compressed(filename) and is_checked_as_fits(filename):
            try:
                check_file(claimed, filename, config.max_uncompressed_bytes)
            except NotFits as exc:
                raise PermanentError(
                    f"{label} not stored (any stored version is untouched): not a complete "
                    f"FITS file: {exc}"
                ) from exc
        stored = store.store(claimed, filename, path)
        if not mark_stored(session, filename, path, stored):
            log.warning("%s: no upload log row has md5 %s; stored anyway", label, stored.md5)
        ingest.add(session, filename, path, complete=True)  # stored atomically, verified
        session.flush()
        claimed.unlink()
        fsync_dir(claimed.parent)
        log.info(
            "%s stored at %s (%d bytes, md5 %s); queued for ingest",
            label,
            store.describe(filename, path),
            stored.size,
            stored.md5,
        )
        return StoreOutcome.STORED

    there = store.info(filename, path)
    if there is None:
        raise PermanentError(
            f"no staged upload {staged} and no {store.describe(filename, path)}: upload it again"
        )
    if mark_stored(session, filename, path, there):
        ingest.add(session, filename, path, complete=True)
        log.info("%s was already stored; queued for ingest", label)
        return StoreOutcome.RECOVERED
    log.info("%s already stored and recorded; nothing to do", label)
    return StoreOutcome.NOTHING_TO_DO


def upload_work(session: Session, entry: Entry, context: WorkContext) -> None:
    """The queue work function of ``ingest_uploaded_file`` (the upload queue)."""
    try:
        store_upload(session, context.config, entry.filename, entry.path, logger=context.logger)
    except BadName as exc:
        raise PermanentError(f"refusing {entry.path}/{entry.filename}: {exc}") from exc
    except (StorageUnavailable, Md5Mismatch, OSError) as exc:
        raise TransientError(f"{type(exc).__name__}: {exc}") from exc
