"""Roll call of the present files: is every diskfile the database holds as present still in the
data store, with the bytes recorded?

Files vanish without an ingest to notice (deleted by hand, a disk replaced, an S3 lifecycle
rule), and until something looks, the archive goes on advertising them. A file that is gone
has its present version marked not present. One whose size (or, with ``md5``, md5) differs
from the recorded version changed without being re-ingested: it is queued for ingest, which
records the new version. Everything goes through the storage layer, so local disk and S3 are
checked the same way.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.ingest.ingest import mark_not_present
from fits_storage.orm import DiskFile
from fits_storage.queues import get_queue
from fits_storage.storage import Store

BATCH = 1000


@dataclass(frozen=True)
class Recorded:
    """A present version as the database recorded it."""

    id: int
    filename: str
    path: str
    size: int
    md5: str

    @property
    def label(self) -> str:
        return f"{self.path}/{self.filename}" if self.path else self.filename


@dataclass
class RollcallResult:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def line(self, dryrun: bool) -> str:
        would = "would be " if dryrun else ""
        return (
            f"checked {self.checked} present files: {len(self.missing)} missing "
            f"({would}marked not present), {len(self.changed)} changed "
            f"({would}queued for ingest)"
        )


def present_versions(session_factory: sessionmaker[Session]) -> Iterator[list[Recorded]]:
    """Every present diskfile, in batches by id, each read in its own short transaction."""
    last = 0
    while True:
        with session_factory() as session:
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            rows = session.execute(
                select(
                    DiskFile.id,
                    DiskFile.filename,
                    DiskFile.path,
                    DiskFile.file_size,
                    DiskFile.file_md5,
                )
                .where(DiskFile.present, DiskFile.id > last)
                .order_by(DiskFile.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return
        yield [Recorded(*row) for row in rows]
        last = rows[-1][0]


def stored_md5(store: Store, filename: str, path: str) -> str:
    """The md5 of the bytes actually stored, read through (not a recorded or metadata md5)."""
    digest = hashlib.md5()
    for chunk in store.iter_bytes(filename, path):
        digest.update(chunk)
    return digest.hexdigest()


def check(store: Store, version: Recorded, md5: bool) -> str | None:
    """What is wrong with one present version: "missing", "changed", or None."""
    found = store.stat(version.filename, version.path)
    if found is None:
        return "missing"
    if found.size != version.size:
        return "changed"
    if md5 and stored_md5(store, version.filename, version.path) != version.md5:
        return "changed"
    return None


class TooManyMissing(RuntimeError):
    """More files missing than the caller allows: more likely an unmounted disk or a wrong
    bucket than files deleted, so nothing was marked."""


def rollcall(
    config: Config,
    session_factory: sessionmaker[Session],
    store: Store,
    log: logging.Logger,
    *,
    md5: bool = False,
    dryrun: bool = False,
    max_missing: int | None = None,
) -> RollcallResult:
    """Check every present version; mark the missing ones and queue the changed ones.

    Everything is checked before anything is marked, so that with more than ``max_missing``
    files missing nothing is (:class:`TooManyMissing`).
    """
    result = RollcallResult()
    missing: list[Recorded] = []
    changed: list[Recorded] = []
    for batch in present_versions(session_factory):
        for version in batch:
            result.checked += 1
            problem = check(store, version, md5)
            if problem == "missing":
                missing.append(version)
            elif problem == "changed":
                changed.append(version)
    result.missing = [v.label for v in missing]
    result.changed = [v.label for v in changed]
    if max_missing is not None and len(missing) > max_missing and not dryrun:
        first = store.describe(missing[0].filename, missing[0].path)
        raise TooManyMissing(
            f"{len(missing)} of {result.checked} present files are missing (the first: "
            f"{first}), more than {max_missing}: nothing was marked. Is the data store "
            "mounted? If they really are gone, run again with a larger --max-missing."
        )
    would = "would be " if dryrun else ""
    for version in missing:
        where = store.describe(version.filename, version.path)
        log.warning("%s is missing (%s): %smarked not present", version.label, where, would)
    for version in changed:
        log.warning(
            "%s differs from its ingested version: %squeued for ingest", version.label, would
        )
    if dryrun:
        return result
    queue = get_queue("ingest", config)
    for start in range(0, max(len(missing), len(changed)), BATCH):
        with session_factory() as session:
            for version in missing[start : start + BATCH]:
                mark_not_present(session, version.id)
            for version in changed[start : start + BATCH]:
                queue.add(session, version.filename, version.path, force_md5=True)
            session.commit()
    return result
