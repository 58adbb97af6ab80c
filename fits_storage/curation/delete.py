"""Freeing the summit's dataflow disk: delete a file only once the archive holds its bytes.

A present file is deleted when all of these hold, checked in this order, each refusal logged
with its reason: it is a regular file older than ``min_age_days`` (by its mtime); no ingest or
export of it is waiting or in progress; and every archive lists it as present with the data
md5 of the bytes on disk now (hashed here, not taken from the database, so a file changed
since its ingest is kept). An archive that does not answer stops the run: nothing is deleted
on a guess. The deleted version is marked not present, as ``rollcall`` marks a vanished one;
its diskfile row stays, since other tables refer to it.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.curation.archive import ArchiveChecker
from fits_storage.ingest.digest import DigestError, compression_of, digest_file
from fits_storage.ingest.ingest import mark_not_present
from fits_storage.ingest.rollcall import Recorded, present_versions
from fits_storage.orm import ExportQueue, IngestQueue
from fits_storage.queues import Status

DAY_SECONDS = 86400.0
DELETED, KEPT, ERROR = "deleted", "kept", "error"
PENDING = (Status.WAITING.value, Status.IN_PROGRESS.value)


@dataclass
class DeleteResult:
    """Counts of each decision, and the names deleted (or that would be, in a dry run)."""

    checked: int = 0
    deleted: list[str] = field(default_factory=list)
    too_young: int = 0
    pending: int = 0
    not_confirmed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    freed_bytes: int = 0

    def line(self, dryrun: bool) -> str:
        did = "would delete" if dryrun else "deleted"
        return (
            f"checked {self.checked} present files: {did} {len(self.deleted)} "
            f"({self.freed_bytes} bytes); kept {len(self.not_confirmed)} not confirmed at the "
            f"archive, {self.too_young} too young, {self.pending} with queue work pending, "
            f"{len(self.skipped)} skipped; {len(self.errors)} errors"
        )


@dataclass(frozen=True)
class DeleteRules:
    """What a run may delete: its age limit and an optional filename pattern."""

    min_age_days: float
    file_re: re.Pattern[str] | None = None
    max_files: int | None = None


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def has_pending_work(session: Session, version: Recorded) -> bool:
    """An ingest or export of the file waiting or running: its bytes are still in use."""
    for model in (IngestQueue, ExportQueue):
        busy = session.scalar(
            select(
                exists().where(
                    model.filename == version.filename,
                    model.path == version.path,
                    model.status.in_(PENDING),
                )
            )
        )
        if busy:
            return True
    return False


def delete_files(
    config: Config,
    session_factory: sessionmaker[Session],
    checker: ArchiveChecker,
    rules: DeleteRules,
    log: logging.Logger,
    *,
    dryrun: bool = False,
    now: float | None = None,
) -> DeleteResult:
    """Delete every present file the archive confirms (see the module docstring).

    Raises :class:`~fits_storage.curation.archive.ArchiveUnreachable` when an archive does not
    answer; what was deleted before that stays deleted and marked.
    """
    now = time.time() if now is None else now
    result = DeleteResult()
    would = "would delete" if dryrun else "deleting"
    for batch in present_versions(session_factory):
        for version in batch:
            if rules.file_re is not None and not rules.file_re.search(version.filename):
                continue
            if rules.max_files is not None and len(result.deleted) >= rules.max_files:
                return result
            result.checked += 1
            local = config.storage_root / version.path / version.filename
            try:
                st = os.lstat(local)
            except FileNotFoundError:
                log.info("%s: keep: not on disk (rollcall marks it)", version.label)
                result.skipped.append(version.label)
                continue
            if not stat.S_ISREG(st.st_mode):
                log.warning("%s: keep: not a regular file", version.label)
                result.skipped.append(version.label)
                continue
            age_days = (now - st.st_mtime) / DAY_SECONDS
            if age_days < rules.min_age_days:
                log.debug("%s: keep: %.1f days old", version.label, age_days)
                result.too_young += 1
                continue
            with session_factory() as session:
                busy = has_pending_work(session, version)
            if busy:
                log.info("%s: keep: an ingest or export of it is pending", version.label)
                result.pending += 1
                continue
            try:
                digest = digest_file(
                    local, compression_of(version.filename), limit=config.max_uncompressed_bytes
                )
            except (OSError, DigestError) as exc:
                log.error("%s: keep: cannot read it: %s", version.label, exc)
                result.errors.append(version.label)
                continue
            verdict = checker.verdict(version.filename, digest.data_md5)
            if not verdict.confirmed:
                log.info(
                    "%s: keep: data md5 %s: %s", version.label, digest.data_md5, verdict.reason
                )
                result.not_confirmed.append(version.label)
                continue
            log.info("%s: %s: %.1f days old, %s", version.label, would, age_days, verdict.reason)
            outcome = DELETED if dryrun else _delete(session_factory, version, local, st, log)
            if outcome == DELETED:
                result.deleted.append(version.label)
                result.freed_bytes += st.st_size
            elif outcome == KEPT:
                result.skipped.append(version.label)
            else:
                result.errors.append(version.label)
    return result


def _delete(
    session_factory: sessionmaker[Session],
    version: Recorded,
    local: Path,
    before: os.stat_result,
    log: logging.Logger,
) -> str:
    """Mark the version not present and unlink the file, in one transaction that commits only
    once the file is gone: DELETED. A file changed since it was hashed, or a version no longer
    present (re-ingested meanwhile), is KEPT; a failed unlink is an ERROR."""
    with session_factory() as session:
        if not mark_not_present(session, version.id):
            session.rollback()
            log.warning("%s: kept: its version changed in the database meanwhile", version.label)
            return KEPT
        try:
            if _signature(os.lstat(local)) != _signature(before):
                session.rollback()
                log.warning("%s: kept: the file changed while it was checked", version.label)
                return KEPT
            os.unlink(local)
        except OSError as exc:
            session.rollback()
            log.error("%s: kept: cannot delete it: %s", version.label, exc)
            return ERROR
        session.commit()  # if this fails, the next rollcall marks the missing file
    log.info("%s: deleted and marked not present", version.label)
    return DELETED
