"""The preview queue's work: draw a file's present version and record its pictures.

The database is read first and that transaction ended; the file is fetched and drawn and the
JPEGs stored with no transaction open (on SQLite every transaction holds the write lock the
queue's heartbeats need). Then, in the caller's transaction, the rows of every older picture
or note of the same file are replaced by the new ones, so the file's previews switch from old
to new together with the entry's completion. The old JPEGs are removed once that has
committed; if it rolls back instead, the new JPEGs are removed and the old ones stay in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from fits_storage.ingest.ingest import file_name_for
from fits_storage.ingest.source import describe, local_copy
from fits_storage.orm import DiskFile, Preview, PreviewNote
from fits_storage.preview.errors import PreviewError
from fits_storage.preview.make import PreviewResult, make_previews
from fits_storage.queues import Entry, TransientError
from fits_storage.storage.base import StorageError, StorageUnavailable
from fits_storage.storage.previews import PreviewStore, get_preview_store, preview_key

if TYPE_CHECKING:
    from fits_storage.config import Config
    from fits_storage.queues import WorkContext

WORK_DIR = "previews_work"


@dataclass(frozen=True)
class Version:
    id: int
    file_id: int
    filename: str
    path: str


def present_version(session: Session, filename: str, path: str) -> Version | None:
    row = session.execute(
        select(DiskFile.id, DiskFile.file_id, DiskFile.filename, DiskFile.path)
        .where(DiskFile.filename == filename, DiskFile.path == path, DiskFile.present)
        .order_by(DiskFile.id.desc())
        .limit(1)
    ).first()
    return Version(*row) if row is not None else None


def _has_previews(session: Session, diskfile_id: int) -> bool:
    made = session.scalar(select(Preview.id).where(Preview.diskfile_id == diskfile_id).limit(1))
    noted = session.scalar(
        select(PreviewNote.id).where(PreviewNote.diskfile_id == diskfile_id).limit(1)
    )
    return made is not None or noted is not None


def _store_error(exc: StorageError, label: str) -> Exception:
    if isinstance(exc, StorageUnavailable):
        return TransientError(f"{label}: preview store unavailable: {exc}")
    return PreviewError(f"{label}: cannot store its preview: {exc}")


def _remove(store: PreviewStore, keys: list[str]) -> None:
    for key in keys:
        try:
            store.delete(key)
        except (StorageError, OSError):
            pass  # an orphan JPEG costs a few kilobytes; no row names it


def _after_outcome(
    session: Session, on_commit: list[str], on_rollback: list[str], store: PreviewStore
) -> None:
    """Remove ``on_commit`` keys once the transaction commits, ``on_rollback`` if it does not."""
    done = False

    def remove(keys: list[str]) -> None:
        nonlocal done
        if done:
            return
        done = True
        _remove(store, keys)

    event.listen(session, "after_commit", lambda _s: remove(on_commit), once=True)
    event.listen(session, "after_rollback", lambda _s: remove(on_rollback), once=True)


def record(
    session: Session,
    store: PreviewStore,
    version: Version,
    result: PreviewResult,
) -> list[str]:
    """Store the pictures and, in the session, replace the file's preview rows; returns the
    keys written. The old JPEGs go once the session commits."""
    name = file_name_for(version.filename)
    written: list[str] = []
    try:
        for picture in result.pictures:
            key = preview_key(name, picture.size, picture.md5)
            store.put(key, picture.jpeg)
            written.append(key)
    except StorageError as exc:
        _remove(store, written)
        raise _store_error(exc, describe(version.path, version.filename)) from exc
    versions = select(DiskFile.id).where(DiskFile.file_id == version.file_id)
    old_keys = set(session.scalars(select(Preview.key).where(Preview.diskfile_id.in_(versions))))
    session.execute(delete(Preview).where(Preview.diskfile_id.in_(versions)))
    session.execute(delete(PreviewNote).where(PreviewNote.diskfile_id.in_(versions)))
    for picture, key in zip(result.pictures, written, strict=True):
        session.add(
            Preview(
                diskfile_id=version.id,
                size=picture.size,
                width=picture.width,
                height=picture.height,
                md5=picture.md5,
                key=key,
            )
        )
    if result.note is not None:
        session.add(PreviewNote(diskfile_id=version.id, reason=result.note))
    _after_outcome(
        session,
        sorted(old_keys - set(written)),
        [key for key in written if key not in old_keys],
        store,
    )
    return written


def preview_work(session: Session, entry: Entry, context: WorkContext) -> None:
    """Make the previews of the entry's file (its present version), unless it has them and
    the entry does not insist (``force``)."""
    config: Config = context.config
    label = describe(entry.path, entry.filename)
    version = present_version(session, entry.filename, entry.path)
    if version is None:
        raise PreviewError(f"{label}: no present version in the database (not ingested?)")
    if not entry["force"] and _has_previews(session, version.id):
        context.logger.info("%s: preview already made (diskfile %d)", label, version.id)
        return
    session.rollback()  # no transaction open while the file is fetched and drawn
    args = context.args
    with local_copy(config, entry.path, entry.filename) as local:
        result = make_previews(
            local,
            label,
            workdir=config.system_dir / WORK_DIR,
            limit=config.max_uncompressed_bytes,
            stretch=getattr(args, "stretch", "zscale"),
            asinh=getattr(args, "asinh", False),
        )
    record(session, get_preview_store(config), version, result)
    if result.note is not None:
        context.logger.info("%s: no preview: %s (diskfile %d)", label, result.note, version.id)
    else:
        sizes = ", ".join(f"{p.size} {p.width}x{p.height}" for p in result.pictures)
        context.logger.info("%s: preview made, %s: %s", label, result.kind, sizes)
