"""Ingest of one file: change detection, a new diskfile version with its header rows, fan-out.

The database sees one short write transaction per ingest. What is needed from the database is
read first and that transaction ended; the file is then hashed and its headers read with no
transaction open (on SQLite every transaction holds the write lock, which the queue's
heartbeats need too); the rows are written last, in the caller's transaction, so the new
version, the retirement of the old one and the queue entries of the fan-out are committed
together, or not at all.

Each file's bytes are read once: a compressed file is decompressed while its md5 is taken,
into a private staging copy that astropy and ``fitsverify`` then read (both would otherwise
decompress it again), and ``fitsverify`` runs beside the md5 and astropy work: by the process's
long-running ``fitsverify`` (:class:`~fits_storage.ingest.verify.FitsverifyServer`), which
spares each file the program's start-up.

Decompression is bounded (DESIGN §4): it streams in blocks of 1 MiB, and stops at whichever
comes first of ``max_uncompressed_bytes`` (the file fails: IngestError) and the room in the
staging folder, measured before the first byte is written (a TransientError: retried later).
The staging copy is removed either way; a bomb never fills the memory or the disk.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.fileops.audit import record_md5_after
from fits_storage.ingest.digest import Digest, DigestError, TooLarge, compression_of, digest_file
from fits_storage.ingest.errors import FileChangingError, FileMissingError, IngestError
from fits_storage.ingest.fitsread import read_fits
from fits_storage.ingest.present import (
    KnownPresent,
    PresentVersion,
    file_name_for,
    read_present_version,
)
from fits_storage.ingest.readahead import (
    READ_AHEAD_MAX_BYTES,
    FileRead,
    Prepared,
    ReadAhead,
    ReadAheadPace,
)
from fits_storage.ingest.rows import (
    Completion,
    Waiting,
    Written,
    insert_first_version,
    write_first_version_completing,
)
from fits_storage.ingest.source import StoredStat, describe, local_copy, stat_stored, store_for
from fits_storage.ingest.summitfiles import read_miscfile_meta, read_obslog
from fits_storage.ingest.verify import FitsverifyRun, ServerRun, start_verification
from fits_storage.orm import (
    DiskFile,
    DiskFileReport,
    File,
    FullTextHeader,
    MiscFile,
    Obslog,
    utcnow,
)
from fits_storage.queues import Entry, get_queue
from fits_storage.queues.errors import TransientError
from fits_storage.scan.names import FileKind, file_kind, is_miscfile_meta, miscfile_of_meta
from fits_storage.storage import LocalStore
from fits_storage.storage.base import room_in

_log = logging.getLogger(__name__)

STAGING_DIR = ".ingest_staging"


class IngestAction(StrEnum):
    NEW = "ingested new file"
    NEW_VERSION = "ingested new version"
    UNCHANGED = "unchanged"
    MD5_UNCHANGED = "md5 unchanged, mtime refreshed"
    META_UPDATED = "unchanged, miscfile metadata updated"
    META_ONLY = "miscfile metadata, its file is not there yet"


@dataclass(frozen=True)
class IngestResult:
    action: IngestAction
    filename: str
    path: str
    file_id: int | None
    diskfile_id: int | None
    file_md5: str | None = None
    queued: tuple[str, ...] = ()
    header_notes: int = 0
    verified_ok: bool | None = None
    completed: bool = False  # the queue entry given as ``completing`` completed with the rows
    claimed: Entry | None = None  # the next entry, leased with that completion
    prepared_next: Prepared | None = None  # what that statement learnt for its ingest

    def describe(self) -> str:
        """One line for the log: what happened to which file."""
        text = f"{describe(self.path, self.filename)}: {self.action.value}"
        if self.diskfile_id is not None and self.action in (
            IngestAction.NEW,
            IngestAction.NEW_VERSION,
        ):
            text += f" (diskfile {self.diskfile_id}, md5 {self.file_md5}"
            if self.header_notes:
                text += f", {self.header_notes} header notes"
            if self.verified_ok is False:
                text += ", verification reported problems"
            text += ")"
            if self.queued:
                text += f"; queued {', '.join(self.queued)}"
        elif self.queued:
            text += f"; queued {', '.join(self.queued)}"
        return text


def _read_only(session: Session) -> Session:
    """``session``, its next transaction made for one read: in autocommit on PostgreSQL (no
    BEGIN and COMMIT round trips), a deferred transaction on SQLite (no write lock taken)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    else:
        session.connection(execution_options={"sqlite_begin": "DEFERRED"})
    return session


def _lastmod(mtime_ns: int) -> datetime:
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC).replace(tzinfo=None)


def _refresh_mtime(session: Session, version: PresentVersion, stat: StoredStat) -> bool:
    """Record the new mtime of unchanged bytes, if that version is still the present one."""
    done = session.execute(
        update(DiskFile)
        .where(DiskFile.id == version.id, DiskFile.present, DiskFile.file_md5 == version.md5)
        .values(mtime_ns=stat.mtime_ns, lastmod=_lastmod(stat.mtime_ns))
    )
    if done.rowcount != 1:
        return False
    # a header edit may have rewritten the bytes as they were (an edit undone)
    record_md5_after(session, version.filename, version.path, version.md5)
    return True


def _lock_file_row(session: Session, name: str) -> tuple[int, bool]:
    """The ``file`` row's id, inserted if new, locked until commit; and whether it is new.

    INSERT ... ON CONFLICT DO NOTHING RETURNING id: a row comes back only when this call
    inserted it (then no version of it can exist: one statement is all a new name costs).
    Otherwise the existing row is selected FOR UPDATE. Two workers ingesting the same name
    never collide; on PostgreSQL the row lock serialises their version changes for that name
    (on SQLite the transaction's write lock already does).
    """
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = session.execute(
        dialect.insert(File)
        .values(name=name)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(File.id)
    ).scalar()
    if inserted is not None:
        return inserted, True
    found = session.execute(select(File.id).where(File.name == name).with_for_update())
    return found.scalar_one(), False


def decompress_staging_dir(config: Config) -> Path:
    """Where decompressed copies are put: a hidden folder of ``storage_root`` (local disk this
    worker owns, out of reach of stored names and of scans, as ``source.staging_dir``)."""
    return config.storage_root / STAGING_DIR


class _StagingWriter:
    """The staging file as a sink: a failed write (disk full) is transient, not bad input."""

    def __init__(self, handle: BinaryIO, label: str) -> None:
        self._handle = handle
        self._label = label

    def write(self, data: bytes) -> int:
        try:
            return self._handle.write(data)
        except OSError as exc:
            raise TransientError(f"{self._label}: cannot write a decompressed copy: {exc}") from exc


@dataclass(frozen=True)
class _Staged:
    """An open, empty staging file, and how much may be written in its folder."""

    path: Path
    handle: BinaryIO
    room: int


@contextmanager
def _staged_copy(config: Config, label: str) -> Iterator[_Staged]:
    """A staging file, with the room left for it; closed and removed when the block ends."""
    folder = decompress_staging_dir(config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        room = room_in(folder)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".fits")
    except OSError as exc:
        raise TransientError(f"{label}: cannot make a decompressed copy: {exc}") from exc
    staged = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield _Staged(staged, handle, room)
    finally:
        staged.unlink(missing_ok=True)


def _digest(
    local: Path,
    filename: str,
    label: str,
    sink: _StagingWriter | None = None,
    limit: int | None = None,
    *,
    compressed: bool = True,
) -> Digest:
    """The file's digest; with ``compressed`` False its bytes are taken as they are (an
    opaque ``.tar.gz`` miscfile is data, not a compressed FITS file)."""
    try:
        return digest_file(local, compression_of(filename) if compressed else None, sink, limit)
    except TooLarge:
        raise
    except DigestError as exc:
        raise IngestError(f"{label}: {exc}") from exc
    except FileNotFoundError as exc:
        raise FileMissingError(f"{label}: file vanished while being read") from exc
    except OSError as exc:
        raise IngestError(f"{label}: cannot read: {exc.strerror or exc}") from exc


def _decompress(config: Config, local: Path, filename: str, label: str, staged: _Staged) -> Digest:
    """Digest ``local`` while decompressing it into ``staged``, within the ceiling and the room."""
    ceiling = config.max_uncompressed_bytes
    folder = staged.path.parent
    if staged.room < 1:
        raise TransientError(
            f"{label}: no room to decompress in {folder} (free space is below the reserve)"
        )
    try:
        digest = _digest(
            local, filename, label, _StagingWriter(staged.handle, label), min(ceiling, staged.room)
        )
    except TooLarge as exc:
        if exc.limit < ceiling:
            raise TransientError(
                f"{label}: not enough room to decompress in {folder}: the data grows past the "
                f"{staged.room} bytes free there (less a reserve); stopped, copy removed"
            ) from exc
        raise IngestError(
            f"{label}: decompresses to more than {ceiling} bytes (max_uncompressed_bytes); "
            "not ingested"
        ) from exc
    try:
        staged.handle.close()
    except OSError as exc:
        raise TransientError(f"{label}: cannot write a decompressed copy: {exc}") from exc
    return digest


def _check_stable(config: Config, path: str, filename: str, before: StoredStat) -> None:
    """The bytes read must be the bytes recorded: a file still being written is retried."""
    after = stat_stored(config, path, filename)
    if after != before:
        raise FileChangingError(
            f"{describe(path, filename)}: changed while being read (still being written?)",
            delay=max(1.0, config.defer_delay),
        )


def fan_out_targets(config: Config, *, fits: bool = True) -> list[tuple[str, dict[str, Any], str]]:
    """What follows an ingest, per configuration: (queue, the entry's own columns, what the
    log says) of each entry to add. Files that are not FITS (observing logs, miscfiles) are
    exported only."""
    targets = [
        ("export", {"destination": destination}, f"export to {destination}")
        for destination in config.export_destinations
    ]
    if fits and config.using_previews:
        targets.append(("preview", {}, "preview"))
    if fits and config.using_calcache:
        targets.append(("calcache", {}, "calcache"))
    return targets


def fan_out(
    session: Session, config: Config, filename: str, path: str, *, fits: bool = True
) -> tuple[str, ...]:
    """Queue what follows an ingest (:func:`fan_out_targets`); returns what was queued."""
    targets = fan_out_targets(config, fits=fits)
    for queue, extra, _ in targets:
        get_queue(queue, config).add(session, filename, path, **extra)
    return tuple(said for _, _, said in targets)


def mark_not_present(session: Session, diskfile_id: int) -> bool:
    """Record that a version's bytes are gone from the data store; False if it was not the
    present version (any more)."""
    done = session.execute(
        update(DiskFile).where(DiskFile.id == diskfile_id, DiskFile.present).values(present=False)
    )
    return done.rowcount == 1


@contextmanager
def _gone_marked_not_present(session: Session, version: PresentVersion | None) -> Iterator[None]:
    """A file found missing takes its present version (at the same place) out of the present
    set, committed at once: the entry fails, the record of where the bytes are must not wait."""
    try:
        yield
    except FileMissingError as exc:
        if version is None:
            raise
        session.rollback()
        marked = mark_not_present(session, version.id)
        session.commit()
        if not marked:
            raise
        raise FileMissingError(
            f"{exc}; its present version (diskfile {version.id}) is now marked not present"
        ) from exc


def ingest_file(
    session: Session,
    config: Config,
    filename: str,
    path: str = "",
    *,
    force: bool = False,
    force_md5: bool = False,
    completing: Completion | None = None,
    prepared: Prepared | None = None,
) -> IngestResult:
    """Bring the database up to date with the stored file ``path/filename`` (disk or S3).

    Unchanged size and mtime (and md5, when the store keeps one) mean unchanged, unless
    ``force_md5``, when the md5 decides; ``force`` records a new version whatever. Any
    transaction already open on ``session`` is committed before the file is read. The caller
    commits the writes (and rolls back on an exception: nothing is then recorded). Bad input
    raises :class:`IngestError`; a file changing while it is read raises
    :class:`FileChangingError` (transient); an unreachable data store, a TransientError. A
    file gone from the store raises :class:`FileMissingError`, after its present version at
    that place is marked not present (committed).

    ``completing``: the queue entry being worked on. On PostgreSQL the first version of a new
    name, its fan-out and that entry's completion are then written in one autocommit
    statement (``result.completed``: the caller must not complete it again). That statement
    may also lease the next entry and read its file's present version; the file after it is
    read ahead meanwhile (:mod:`~fits_storage.ingest.readahead`). The caller hands what was
    learnt (``result.prepared_next``) to the ingest of the entry leased, as ``prepared``.
    """
    if is_miscfile_meta(filename):
        return _ingest_miscfile_meta(
            session, config, filename, path, force, force_md5, completing
        )
    name = file_name_for(filename)
    if session.in_transaction():
        session.commit()
    known = prepared.present if prepared is not None else None
    if known is not None and known.name == name:
        current = known.version
    else:
        current = read_present_version(_read_only(session), name)
        session.commit()

    same_place = current is not None and (current.filename, current.path) == (filename, path)
    with _gone_marked_not_present(session, current if same_place else None):
        return _read_and_record(
            session,
            config,
            filename,
            path,
            name,
            current,
            same_place,
            force,
            force_md5,
            completing,
            prepared,
        )


def _read_and_record(
    session: Session,
    config: Config,
    filename: str,
    path: str,
    name: str,
    current: PresentVersion | None,
    same_place: bool,
    force: bool,
    force_md5: bool,
    completing: Completion | None = None,
    prepared: Prepared | None = None,
) -> IngestResult:
    """Compare the stored file with ``current``, read it if it changed (or take what was read
    ahead, if the file is as it was then), and record it."""
    label = describe(path, filename)
    stat = stat_stored(config, path, filename)
    kind = file_kind(filename)
    if (
        current is not None
        and same_place
        and not (force or force_md5)
        and (current.size, current.mtime_ns) == (stat.size, stat.mtime_ns)
        and stat.md5 in (None, current.md5)
    ):
        result = IngestResult(IngestAction.UNCHANGED, filename, path, current.file_id, current.id)
        return _with_meta_refreshed(session, config, kind, result)

    # the version whose md5 may show the bytes unchanged (then no fitsverify is needed)
    previous = current if current is not None and same_place and not force else None
    if kind in (FileKind.OBSLOG, FileKind.MISCFILE):
        return _read_and_record_summit_file(
            session, config, filename, path, name, stat, previous, kind, force, completing
        )
    ahead = prepared.contents if prepared is not None else None
    if ahead is not None and ahead.usable_for(filename, path, stat):
        # checked stable when it was read, and ``stat``, taken since, is still the stat it was
        # read at (``usable_for``): no second check
        read: FileRead | IngestResult = ahead.read
        if previous is not None and ahead.read.digest.file_md5 == previous.md5:
            read = _md5_unchanged(session, config, filename, path, stat, previous) or read
    else:
        read = _read_now(config, filename, path, label, stat, previous, session)
    if isinstance(read, IngestResult):
        return read
    digest, contents, fitsverify = read
    header = contents.header_fields.to_row()
    rows = [
        header,
        FullTextHeader(fulltext=contents.fulltext),
        DiskFileReport(
            astropy_ok=contents.astropy.ok,
            astropy_report=contents.astropy.text.replace("\x00", ""),
            fitsverify_ok=fitsverify.ok if fitsverify else None,
            fitsverify_report=fitsverify.text if fitsverify else None,
        ),
    ]
    result = _record(
        session,
        config,
        filename,
        path,
        name,
        stat,
        digest,
        rows,
        force,
        completing=completing,
        after=prepared.after if prepared is not None else None,
    )
    if result.action is IngestAction.MD5_UNCHANGED:
        return result
    verified = contents.astropy.ok and (fitsverify is None or fitsverify.ok)
    return replace(
        result, header_notes=len(contents.header_fields.notes), verified_ok=verified
    )


def _md5_unchanged(
    session: Session,
    config: Config,
    filename: str,
    path: str,
    stat: StoredStat,
    previous: PresentVersion,
) -> IngestResult | None:
    """Bytes found the same as ``previous``'s by their md5: its mtime refreshed, if it is still
    the present version (else None: record them as new)."""
    _check_stable(config, path, filename, stat)
    if _refresh_mtime(session, previous, stat):
        return IngestResult(
            IngestAction.MD5_UNCHANGED, filename, path, previous.file_id, previous.id
        )
    return None


def _read_now(
    config: Config,
    filename: str,
    path: str,
    label: str,
    stat: StoredStat,
    previous: PresentVersion | None = None,
    session: Session | None = None,
) -> FileRead | IngestResult:
    """The file's md5, its FITS contents and fitsverify's report, checked to be those of the
    bytes ``stat`` describes; or, if its md5 shows the bytes of ``previous``, the result of an
    ingest that found them unchanged (recorded on ``session``: needed only with ``previous``)."""
    with local_copy(config, path, filename) as local, ExitStack() as stack:
        readable = local  # what astropy and fitsverify read: the uncompressed bytes
        fitsverify_run: FitsverifyRun | ServerRun | None = None
        if compression_of(filename) is None:
            if previous is None:
                fitsverify_run = _enter(stack, start_verification(local))
            digest = _digest(local, filename, label)
        else:
            staged = stack.enter_context(_staged_copy(config, label))
            readable = staged.path
            digest = _decompress(config, local, filename, label, staged)
        if previous is not None and digest.file_md5 == previous.md5:
            assert session is not None
            unchanged = _md5_unchanged(session, config, filename, path, stat, previous)
            if unchanged is not None:
                return unchanged
        if fitsverify_run is None:
            fitsverify_run = _enter(stack, start_verification(readable, shown_as=local))
        contents = read_fits(readable, digest.data_size, label, filename)
        fitsverify = fitsverify_run.result() if fitsverify_run is not None else None
    _check_stable(config, path, filename, stat)
    return FileRead(digest, contents, fitsverify)


_PACE = ReadAheadPace()


def read_ahead(config: Config, waiting: Waiting) -> ReadAhead | None:
    """The file of ``waiting`` read as its ingest would read it, where that needs nothing of
    the database: a plain FITS file on local disk, of at most ``READ_AHEAD_MAX_BYTES``. None
    otherwise, or if anything goes wrong: the ingest itself then reads the file, and says what
    is wrong with it."""
    filename, path = waiting.filename, waiting.path
    if (
        is_miscfile_meta(filename)
        or file_kind(filename) is not FileKind.FITS
        or compression_of(filename) is not None
        or not isinstance(store_for(config), LocalStore)
    ):
        return None
    try:
        stat = stat_stored(config, path, filename)
        if stat.size > READ_AHEAD_MAX_BYTES:
            return None
        read = _read_now(config, filename, path, describe(path, filename), stat)
    except Exception:  # noqa: BLE001 - read again, and reported, by the ingest of the file
        return None
    assert isinstance(read, FileRead)  # no previous version given: nothing to find unchanged
    return ReadAhead(waiting.id, filename, path, stat, read)


def _read_and_record_summit_file(
    session: Session,
    config: Config,
    filename: str,
    path: str,
    name: str,
    stat: StoredStat,
    previous: PresentVersion | None,
    kind: FileKind,
    force: bool,
    completing: Completion | None = None,
) -> IngestResult:
    """An observing log or a miscfile: its bytes are opaque (never decompressed); the log's
    text, or the miscfile's metadata, makes its row (ingest/summitfiles.py)."""
    label = describe(path, filename)
    with local_copy(config, path, filename) as local:
        digest = _digest(local, filename, label, compressed=False)
        if previous is not None and digest.file_md5 == previous.md5:
            _check_stable(config, path, filename, stat)
            if _refresh_mtime(session, previous, stat):
                result = IngestResult(
                    IngestAction.MD5_UNCHANGED, filename, path, previous.file_id, previous.id
                )
                return _with_meta_refreshed(session, config, kind, result)
        if kind is FileKind.OBSLOG:
            row: Obslog | MiscFile = read_obslog(local, filename, label).row(0)
        else:
            row = read_miscfile_meta(config, filename, path).row(0)
    _check_stable(config, path, filename, stat)
    return _record(
        session, config, filename, path, name, stat, digest, [row], force, fits=False,
        completing=completing,
    )


def _with_meta_refreshed(
    session: Session, config: Config, kind: FileKind | None, result: IngestResult
) -> IngestResult:
    """A miscfile whose bytes are unchanged may have new metadata: record it in its row."""
    if kind is not FileKind.MISCFILE or result.diskfile_id is None:
        return result
    meta = read_miscfile_meta(config, result.filename, result.path)
    done = session.execute(
        update(MiscFile)
        .where(MiscFile.diskfile_id == result.diskfile_id, MiscFile.meta_md5 != meta.meta_md5)
        .values(**meta.values())
    )
    if done.rowcount == 0:
        return result
    queued = fan_out(session, config, result.filename, result.path, fits=False)
    return replace(result, action=IngestAction.META_UPDATED, queued=queued)


def _ingest_miscfile_meta(
    session: Session,
    config: Config,
    filename: str,
    path: str,
    force: bool,
    force_md5: bool,
    completing: Completion | None,
) -> IngestResult:
    """A miscfile's metadata queued on its own (an upload of it, on the archive): ingest its
    miscfile, which reads it; if that file is not stored yet, its own ingest will."""
    miscfile = miscfile_of_meta(filename)
    try:
        stat_stored(config, path, miscfile)
    except FileMissingError:
        session.commit()
        return IngestResult(IngestAction.META_ONLY, filename, path, None, None)
    return ingest_file(
        session, config, miscfile, path, force=force, force_md5=force_md5, completing=completing
    )


def _enter(
    stack: ExitStack, run: FitsverifyRun | ServerRun | None
) -> FitsverifyRun | ServerRun | None:
    """``run`` killed when ``stack`` closes (if it is still running then)."""
    return stack.enter_context(run) if run is not None else None


def _write_completing(
    session: Session,
    config: Config,
    name: str,
    diskfile: DiskFile,
    rows: list[Any],
    completing: Completion,
    targets: list[tuple[str, dict[str, Any], str]],
    meanwhile: Callable[[], object] | None = None,
) -> Written | None:
    """A new name's rows, its fan-out (``fan_out_targets``) and the entry's completion in one
    statement, or None (nothing written: the name exists, or a value needs the ordinary path)."""
    adds = []
    for queue_name, extra, _ in targets:
        queue = get_queue(queue_name, config)
        adds.append((queue, queue.entry_values(diskfile.filename, diskfile.path, **extra)))
    done = replace(completing, adds=tuple(adds))
    return write_first_version_completing(session, name, diskfile, rows, done, meanwhile)


def _reading_ahead(
    config: Config, after: Waiting, ahead: list[ReadAhead | None], cut: list[BaseException]
) -> Callable[[], None]:
    """The read-ahead of ``after`` for the write's ``meanwhile``: what it read goes into
    ``ahead``; an interruption (the run-time limit) into ``cut``, and on."""

    def read() -> None:
        try:
            ahead.append(read_ahead(config, after))
        except BaseException as exc:
            cut.append(exc)
            raise

    return read


def _prepared_next(name: str, written: Written, read: list[ReadAhead | None]) -> Prepared | None:
    """What the write learnt for the ingest of the entry it leased: that file's present
    version, and what was read ahead (``read``: empty if nothing was tried, else what
    :func:`read_ahead` gave) if it is that entry's."""
    claimed = written.claimed
    if claimed is None:
        return None
    ahead = read[0] if read else None
    contents = ahead if ahead is not None and ahead.entry_id == claimed.id else None
    if ahead is not None:
        _PACE.record(contents is not None)
    # the statement's read of the file just written could not see its new version: read again
    claimed_name = file_name_for(claimed.filename)
    present = None if claimed_name == name else KnownPresent(claimed_name, written.claimed_present)
    return Prepared(present, contents, written.after)


def _record(
    session: Session,
    config: Config,
    filename: str,
    path: str,
    name: str,
    stat: StoredStat,
    digest: Digest,
    rows: list[Any],
    force: bool,
    *,
    fits: bool = True,
    completing: Completion | None = None,
    after: Waiting | None = None,
) -> IngestResult:
    """The write phase: one new present, canonical version replacing the previous one, with
    ``rows`` (header and reports, or an obslog or miscfile row) attached to it.

    A new name on PostgreSQL is one statement (:func:`insert_first_version`); with
    ``completing`` and no transaction open, that statement also adds the fan-out's entries and
    completes the entry, in autocommit (:func:`write_first_version_completing`); while it
    runs, the file of ``after`` (the entry it will most likely lease) is read ahead."""
    diskfile = DiskFile(
        filename=filename,
        path=path,
        present=True,
        canonical=True,
        file_size=digest.file_size,
        file_md5=digest.file_md5,
        lastmod=_lastmod(stat.mtime_ns),
        mtime_ns=stat.mtime_ns,
        compressed=digest.compressed,
        data_size=digest.data_size,
        data_md5=digest.data_md5,
        entrytime=utcnow(),
    )
    first = None
    if session.get_bind().dialect.name == "postgresql":
        if completing is not None and not session.in_transaction():
            targets = fan_out_targets(config, fits=fits)
            ahead: list[ReadAhead | None] = []
            cut: list[BaseException] = []
            reading = (
                _reading_ahead(config, after, ahead, cut)
                if after is not None and completing.claim_for is not None and _PACE.allows()
                else None
            )
            written = _write_completing(
                session, config, name, diskfile, rows, completing, targets, reading
            )
            if cut:
                if written is None:  # nothing was written: the interruption stands
                    raise cut[0]
                assert after is not None  # only a read-ahead of it is cut
                _log.warning(
                    "%s: reading %s ahead was cut short (%s); its own ingest reads it",
                    describe(path, filename),
                    describe(after.path, after.filename),
                    cut[0],
                )
            if written is not None:
                return IngestResult(
                    IngestAction.NEW,
                    filename,
                    path,
                    written.file_id,
                    written.diskfile_id,
                    file_md5=digest.file_md5,
                    queued=tuple(said for _, _, said in targets),
                    completed=written.completed,
                    claimed=written.claimed,
                    prepared_next=_prepared_next(name, written, ahead),
                )
        first = insert_first_version(session, name, diskfile, rows)
    latest = None
    if first is not None:
        file_id, diskfile_id = first
    else:
        file_id, new_name = _lock_file_row(session, name)
        # A name just inserted has no versions: nothing to re-check or retire.
        latest = None if new_name else read_present_version(session, name)
        if (
            latest is not None
            and not force
            and (latest.filename, latest.path, latest.md5) == (filename, path, digest.file_md5)
        ):
            # Recorded by someone else while we were reading: nothing new to record.
            _refresh_mtime(session, latest, stat)
            return IngestResult(IngestAction.MD5_UNCHANGED, filename, path, file_id, latest.id)
        if not new_name:
            session.execute(
                update(DiskFile)
                .where(DiskFile.file_id == file_id, or_(DiskFile.present, DiskFile.canonical))
                .values(present=False, canonical=False)
            )
            record_md5_after(session, filename, path, digest.file_md5)  # of header edits
        diskfile.file_id = file_id
        session.add(diskfile)
        session.flush()
        diskfile_id = diskfile.id
        for row in rows:
            row.diskfile_id = diskfile_id
        session.add_all(rows)
        session.flush()
    queued = fan_out(session, config, filename, path, fits=fits)
    return IngestResult(
        IngestAction.NEW if latest is None else IngestAction.NEW_VERSION,
        filename,
        path,
        file_id,
        diskfile_id,
        file_md5=digest.file_md5,
        queued=queued,
    )
