"""The fileops queue's work: apply one header-update request to one stored file.

The order is what makes a crash harmless and the request apply once:

1. the new copy is written beside the file (local disk) or beside a verified staging copy
   (S3), flushed, and checked: astropy reads every HDU of it, the new values read back;
2. the ``updatelog`` row is committed with the values and md5 *before* (``applied`` empty);
3. the copy is fsynced and renamed over the file (S3: uploaded and verified);
4. in the entry's own transaction the row gets ``applied``, the file is queued for ingest
   (``complete``: never deferred), and the entry completes.

``applied`` marks a request done. The md5 *after* is not taken by the edit (hashing the new
bytes would cost more than writing them): the ingest queued in 4 reads every byte anyway and,
when it records the new version (or finds the bytes are those of the version it has, an edit
undone), gives its md5 to the file's applied rows that lack one (``fileops/audit.py``); a later
edit of the file, recording its md5 before in 2, does the same if it comes first. Step 4 fills
it itself when an ingest already recorded the new bytes (one that ran between 3 and 4 - a scan,
or while a killed attempt's lease ran out - found the row not yet applied and left it empty):
the present version counts when its size and mtime are the file's now (ingest's own test for
"unchanged"). Step 4 first locks the ``file`` row and that version's row, which an ingest
recording the file holds until it commits, so that neither misses the other.

A worker killed before 3 leaves the old file (and at most a temporary ``.<name>.*.part``,
removed by the next attempt); killed after 3, the next attempt finds its row and the new values
already there, keeps the row's "before" values, counts the file as changed, and only finishes
step 4 (so the ingest is still queued). A request whose values a file already has (and no
earlier attempt's row) changes nothing, queues nothing, and is logged complete with the same
md5 before and after.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.db.engine import session_scope
from fits_storage.fileops.audit import record_md5_after
from fits_storage.fileops.edit import (
    EditError,
    EditResult,
    KnownFile,
    needed_changes,
    read_primary_header,
    swap_primary_header,
    verify_edited,
    write_edited,
)
from fits_storage.fileops.request import HeaderUpdate
from fits_storage.ingest.ingest import file_name_for
from fits_storage.ingest.source import describe, staging_dir, store_for
from fits_storage.orm import DiskFile, File, UpdateLog, utcnow
from fits_storage.queues import Entry, PermanentError, TransientError
from fits_storage.storage import AtomicFile, LocalStore, Store
from fits_storage.storage.base import (
    FileStat,
    NotInStore,
    NotRegularFile,
    StorageError,
    StorageUnavailable,
    file_md5,
    open_regular,
)
from fits_storage.storage.compression import compression_of

if TYPE_CHECKING:
    from fits_storage.queues import WorkContext

WORK_DIR = "fileops"


class FileopsError(PermanentError):
    """The request cannot be applied to the file; the message says why."""


@dataclass(frozen=True)
class Recorded:
    """What an earlier attempt at this request recorded before it installed its edit."""

    old: dict[str, Any]
    md5_before: str


@dataclass(frozen=True)
class Outcome:
    """``changed``: an edit is in place, installed by this attempt or an earlier one."""

    old: dict[str, Any]
    md5_before: str
    changed: bool


def _plain(value: Any) -> Any:
    """A header value as JSON holds it (a card without a value is null)."""
    return value if isinstance(value, str | int | float | bool) else None


def _json(values: Mapping[str, Any]) -> str:
    return json.dumps({k: _plain(v) for k, v in values.items()}, sort_keys=True)


def _log_row(session: Session, request_id: str) -> UpdateLog | None:
    return session.scalar(select(UpdateLog).where(UpdateLog.request_id == request_id))


def ingested_version(
    session: Session, filename: str, path: str, *, lock: bool = False
) -> KnownFile | None:
    """Size, mtime and md5 of the present version ingest recorded at this place (``lock``:
    its row locked until commit)."""
    query = (
        select(DiskFile.file_size, DiskFile.mtime_ns, DiskFile.file_md5)
        .where(DiskFile.filename == filename, DiskFile.path == path, DiskFile.present)
        .order_by(DiskFile.id.desc())
        .limit(1)
    )
    row = session.execute(query.with_for_update() if lock else query).first()
    return KnownFile(*row) if row is not None else None


def _new_log_row(
    entry: Entry, update: HeaderUpdate, old: Mapping[str, Any], md5_before: str
) -> UpdateLog:
    """The audit row of ``entry``'s request, with the values and md5 before."""
    return UpdateLog(
        request_id=entry["request_id"],
        filename=entry.filename,
        path=entry.path,
        requester=update.requester[:255],
        requested=_requested(update),
        old_values=_json(old),
        new_values=_json(update.changes),
        md5_before=md5_before,
    )


def _requested(update: HeaderUpdate) -> datetime:
    try:
        return datetime.fromisoformat(update.requested).replace(tzinfo=None)
    except ValueError:
        return utcnow()


def record_start(
    factory: sessionmaker[Session], entry: Entry, update: HeaderUpdate, result: EditResult
) -> None:
    """Commit the audit row with the values before, unless an earlier attempt did (its
    values are the true "before": this attempt may be reading its predecessor's edit). The md5
    before is the md5 after of the file's last edit, if that still lacks one."""
    with session_scope(factory) as session:
        if _log_row(session, entry["request_id"]) is not None:
            return
        record_md5_after(session, entry.filename, entry.path, result.md5_before)
        session.add(_new_log_row(entry, update, result.old, result.md5_before))


def _remove_leftovers(dest: Path) -> None:
    """Temporary copies of this file left by an attempt that was killed: only one worker
    edits a file at a time (the queue's exclusive filename), so none is in use."""
    for leftover in dest.parent.glob(f".{dest.name}.*.part"):
        leftover.unlink(missing_ok=True)


def edit_copy(
    local: Path,
    name: str,
    dest: Path,
    update: HeaderUpdate,
    limit: int | None,
    before_install: Callable[[EditResult], None],
    known: KnownFile | None = None,
) -> EditResult:
    """Write ``local`` with the update to ``dest`` atomically: beside it, checked, then
    ``before_install``, then fsync and rename. ``dest`` keeps ``local``'s permissions."""
    mode = stat.S_IMODE(os.stat(local).st_mode)
    if compression_of(name) is None:
        return swap_primary_header(
            local, dest, update.changes, update.reject_new, before_install, mode, known
        )
    with AtomicFile(dest, mode) as out, open_regular(local) as source:
        written = write_edited(source, name, out.write, update.changes, update.reject_new, limit)
        out.flush()
        verify_edited(out.tmp, update.changes, written.data_size)
        result = EditResult(written.old, written.md5_before, written.size_before, out.size)
        before_install(result)
        out.commit(size=result.size_after)
    return result


def apply_update(
    local: Path,
    name: str,
    dest: Path,
    update: HeaderUpdate,
    limit: int | None,
    start: Callable[[EditResult], None],
    recorded: Recorded | None,
    known: KnownFile | None = None,
) -> Outcome:
    """Apply ``update`` to the file at ``local``, writing the result to ``dest``; a no-op
    when the file already holds the values (then ``start`` is not called)."""
    header = read_primary_header(local, limit)
    if needed_changes(header, update.changes):
        result = edit_copy(local, name, dest, update, limit, start, known)
        if recorded is not None:
            return Outcome(recorded.old, recorded.md5_before, changed=True)
        return Outcome(result.old, result.md5_before, changed=True)
    if recorded is not None:  # the edit of an earlier attempt is in place
        return Outcome(recorded.old, recorded.md5_before, changed=True)
    old = {k: header.get(k) for k in update.changes}
    return Outcome(old, _md5_of(local, known), changed=False)


def _md5_of(local: Path, known: KnownFile | None) -> str:
    """The file's md5: ingest's when its size and mtime still match, else computed."""
    st = os.stat(local)
    if known is not None and (known.size, known.mtime_ns) == (st.st_size, st.st_mtime_ns):
        return known.md5
    return file_md5(local).md5


def _storage_error(exc: StorageError, label: str) -> Exception:
    if isinstance(exc, StorageUnavailable):
        return TransientError(f"{label}: data store unavailable: {exc}")
    if isinstance(exc, NotInStore):
        return FileopsError(f"{label}: not in the data store: {exc}")
    return FileopsError(f"{label}: {exc}")


def _edit_in_store(
    store: Store,
    context: WorkContext,
    entry: Entry,
    update: HeaderUpdate,
    recorded: Recorded | None,
    known: KnownFile | None,
) -> Outcome:
    config = context.config
    limit = config.max_uncompressed_bytes

    def start(result: EditResult) -> None:
        record_start(context.session_factory, entry, update, result)

    if isinstance(store, LocalStore):
        local = store.path_of(entry.filename, entry.path)
        _remove_leftovers(local)
        return apply_update(local, entry.filename, local, update, limit, start, recorded, known)
    # S3: edit a verified staging copy, record, then upload it over the object (verified).
    with store.local_copy(entry.filename, entry.path, staging_dir(config) / WORK_DIR) as local:
        edited = local.with_name(f"edited-{local.name}")
        started: list[EditResult] = []
        outcome = apply_update(
            local, entry.filename, edited, update, limit, started.append, recorded, known
        )
        if started:
            start(started[0])
            store.store(edited, entry.filename, entry.path)  # hashed, uploaded, verified
        return outcome


def _md5_if_ingested(session: Session, entry: Entry, now: FileStat | None) -> str | None:
    """The md5 ingest recorded of the file as it is ``now`` (after the edit), if it already
    did: it found the row not yet applied. The locks order this with an ingest recording the
    file at this moment, which holds them until it commits: the ``file`` row's (a new version)
    and the present version's (its mtime refreshed, the bytes being those it records)."""
    name = file_name_for(entry.filename)
    session.execute(select(File.id).where(File.name == name).with_for_update())
    known = ingested_version(session, entry.filename, entry.path, lock=True)
    if known is None or now is None or (known.size, known.mtime_ns) != (now.size, now.mtime_ns):
        return None
    return known.md5 if now.md5 in (None, known.md5) else None


def fileops_work(session: Session, entry: Entry, context: WorkContext) -> None:
    """Apply the entry's header update, record it in ``updatelog`` and queue the new bytes for
    ingest. The loop commits our writes with the entry's completion."""
    label = describe(entry.path, entry.filename)
    update = HeaderUpdate.loads(entry["request"])
    row = _log_row(session, entry["request_id"])
    if row is not None and row.applied is not None:
        context.logger.info("%s: request %s already applied", label, entry["request_id"])
        return
    recorded = Recorded(json.loads(row.old_values), row.md5_before) if row is not None else None
    known = ingested_version(session, entry.filename, entry.path)
    session.rollback()  # no transaction open while the file is read and written
    store = store_for(context.config)
    try:
        outcome = _edit_in_store(store, context, entry, update, recorded, known)
        now = store.stat(entry.filename, entry.path) if outcome.changed else None
    except EditError as exc:
        raise FileopsError(f"{label}: {exc}") from exc
    except (FileNotFoundError, NotRegularFile) as exc:
        raise FileopsError(f"{label}: cannot be edited: {exc}") from exc
    except StorageError as exc:
        raise _storage_error(exc, label) from exc
    ingested = None
    if outcome.changed:
        ingested = _md5_if_ingested(session, entry, now)  # the locks first
    else:
        # the last edit's md5 after, if it lacks one, before this row joins the applied
        record_md5_after(session, entry.filename, entry.path, outcome.md5_before)
    row = _log_row(session, entry["request_id"])
    if row is None:  # nothing to change: no row was written before
        row = _new_log_row(entry, update, outcome.old, outcome.md5_before)
        session.add(row)
    row.applied = utcnow()
    if not outcome.changed:
        row.md5_after = outcome.md5_before
        context.logger.info("%s: header already holds %s; unchanged", label, update.changes)
        return
    if ingested is not None:
        session.flush()
        record_md5_after(session, entry.filename, entry.path, ingested)
    context.queue("ingest").add(session, entry.filename, entry.path, complete=True)
    context.logger.info(
        "%s: header updated (%s), md5 before %s; queued for ingest",
        label,
        ", ".join(f"{k}={v!r}" for k, v in update.changes.items()),
        outcome.md5_before,
    )
