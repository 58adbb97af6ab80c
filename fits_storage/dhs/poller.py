"""Watching the DHS disk: decide, for every file on it, whether to copy, queue or leave it.

Completeness cannot be seen from a name (the DHS writes files in place), so a file is taken
only when it is older than ``min_dhs_age_seconds``, looked the same (size and mtime) in two
consecutive scans, and opens as a complete FITS file.

What has already been done is decided against the database and storage_root, never against
memory, so a restart after any downtime catches up by itself:

* a version of the file the database has recorded (same size and mtime, or same size and md5)
  is skipped. Any recorded version counts, not only the present one, so a copy that staff
  fixed on the dataflow disk is not overwritten by the original still on the DHS disk;
* the same bytes already in storage_root (a copy whose ingest was not recorded yet) only need
  queueing for ingest;
* anything else is copied (verified, atomically) and then queued.

Memory only caches those decisions (per name, size and mtime) so an unchanged file is not
looked up again every few seconds, and remembers which broken files were already reported.

Symbolic links and anything else that is not a regular file (a FIFO, a device, a directory
with a FITS name) are never read: skipped with one warning per name (again only if it changes
kind), and every open refuses them again (``open_regular``), so a name swapped for a link
after the scan is not followed either.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.dhs.copy import CopyError, Observation, copy_verified, observe
from fits_storage.dhs.fitscheck import NotCompleteFits, check_complete_fits
from fits_storage.orm.file import DiskFile
from fits_storage.queues import get_queue
from fits_storage.queues.sortkey import sortkey_for_filename
from fits_storage.scan.names import skip_reason
from fits_storage.storage.base import NotRegularFile, handle_md5, kind_of, open_regular

LOOKUP_BATCH = 500


class Action(StrEnum):
    SKIP = "skip"  # the database already has this version
    QUEUE = "queue"  # the same bytes are in storage_root: ingest them
    COPY = "copy"  # copy, then queue


@dataclass(frozen=True)
class Version:
    """A version of a file as the database recorded it."""

    size: int
    md5: str
    mtime_ns: int
    present: bool


@dataclass
class PassResult:
    """What one pass did, for logs and tests."""

    seen: int = 0
    pending: int = 0
    copied: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


class DhsPoller:
    """One copy_from_dhs instance's view of the DHS disk, pass after pass."""

    def __init__(
        self,
        config: Config,
        session_factory: sessionmaker[Session],
        logger: logging.Logger,
        *,
        dryrun: bool = False,
        tick: Callable[[], None] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        """``tick`` is called for every file acted on (the daemon feeds systemd's watchdog from
        it during a long catch-up); ``stopping`` ends a pass early between two files."""
        self.source_dir = config.dhs_perm
        self.dest_dir = config.storage_root
        self.file_mode = config.file_mode
        self.min_age_ns = int(config.min_dhs_age_seconds * 1e9)
        self.session_factory = session_factory
        self.log = logger
        self.dryrun = dryrun
        self.tick = tick or (lambda: None)
        self.stopping = stopping or threading.Event()
        self.queue = get_queue("ingest", config)
        self.previous: dict[str, Observation] = {}
        self.settled: dict[str, Observation] = {}
        self.rejected: dict[str, Observation] = {}
        self.irregular: dict[str, str] = {}

    # -- looking ------------------------------------------------------------------------------

    def scan(self) -> dict[str, Observation]:
        """Candidate files on the DHS disk: regular files with FITS names that are not temporary.

        Nothing is followed: a symlink or other non-regular entry with a FITS name is reported
        once (see :meth:`skip_irregular`) and left alone.
        """
        listing: dict[str, Observation] = {}
        irregular: dict[str, str] = {}
        with os.scandir(self.source_dir) as entries:
            for entry in entries:
                name = entry.name
                try:
                    reason = skip_reason(name)
                    if reason:
                        if entry.is_dir(follow_symlinks=False):
                            self.log.debug("Ignoring directory: %s", name)
                        else:
                            self.log.debug("Ignoring %s: %s", reason, name)
                        continue
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                kind = kind_of(st.st_mode)
                if kind is not None:
                    irregular[name] = kind
                    continue
                listing[name] = Observation(st.st_size, st.st_mtime_ns)
        self.skip_irregular(irregular)
        return listing

    def skip_irregular(self, found: dict[str, str]) -> None:
        """One warning per name that is not a regular file, not one per pass (DESIGN §4)."""
        for name, kind in found.items():
            if self.irregular.get(name) != kind:
                self.log.warning(
                    "Skipping %s: it is %s (only regular files are copied; links are not followed)",
                    name,
                    kind,
                )
        self.irregular = found

    def ready(self, listing: dict[str, Observation], now_ns: int) -> tuple[list[str], int]:
        """Names to act on this pass (newest data first), and how many are still settling."""
        names, pending = [], 0
        for name, obs in listing.items():
            if self.settled.get(name) == obs or self.rejected.get(name) == obs:
                continue
            if self.previous.get(name) != obs:
                self.log.debug("%s is new or still changing; checking again next pass", name)
                pending += 1
            elif now_ns - obs.mtime_ns < self.min_age_ns:
                self.log.debug("%s is younger than min_dhs_age_seconds; waiting", name)
                pending += 1
            else:
                names.append(name)
        names.sort(key=sortkey_for_filename, reverse=True)
        return names, pending

    def recorded_versions(self, names: list[str]) -> dict[str, list[Version]]:
        """Every version of these files in storage_root's top directory that the database has."""
        versions: dict[str, list[Version]] = defaultdict(list)
        with self.session_factory() as session:
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            for start in range(0, len(names), LOOKUP_BATCH):
                rows = session.execute(
                    select(
                        DiskFile.filename,
                        DiskFile.file_size,
                        DiskFile.file_md5,
                        DiskFile.mtime_ns,
                        DiskFile.present,
                    ).where(
                        DiskFile.path == "",
                        DiskFile.filename.in_(names[start : start + LOOKUP_BATCH]),
                    )
                )
                for name, size, md5, mtime_ns, present in rows:
                    versions[name].append(Version(size, md5, mtime_ns, bool(present)))
        return versions

    def decide(self, name: str, obs: Observation, versions: list[Version]) -> Action:
        """Compare a stable DHS file with the database and storage_root, hashing only if needed."""
        source = self.source_dir / name
        if any(v.present and (v.size, v.mtime_ns) == (obs.size, obs.mtime_ns) for v in versions):
            return Action.SKIP
        source_md5: str | None = None
        if any(v.size == obs.size for v in versions):
            source_md5 = _md5(source)
            if any((v.size, v.md5) == (obs.size, source_md5) for v in versions):
                return Action.SKIP
        try:
            stored = observe(self.dest_dir / name)
        except FileNotFoundError:
            return Action.COPY
        if stored.size != obs.size:
            return Action.COPY
        if stored.mtime_ns == obs.mtime_ns:
            return Action.QUEUE
        source_md5 = source_md5 or _md5(source)
        return Action.QUEUE if _md5(self.dest_dir / name) == source_md5 else Action.COPY

    # -- acting -------------------------------------------------------------------------------

    def run_pass(self) -> PassResult:
        """Scan once and act on every file that is ready."""
        listing = self.scan()
        names, pending = self.ready(listing, time.time_ns())
        self.previous = listing
        for memory in (self.settled, self.rejected):
            for gone in set(memory) - set(listing):
                del memory[gone]
        result = PassResult(seen=len(listing), pending=pending)
        if not names:
            return result
        self.log.debug("%d new files to check", len(names))
        known = self.recorded_versions(names)
        for name in names:
            if self.stopping.is_set():
                break
            self.tick()
            self.handle(name, listing[name], known.get(name, []), result)
        return result

    def handle(
        self, name: str, obs: Observation, versions: list[Version], result: PassResult
    ) -> None:
        source = self.source_dir / name
        try:
            action = self.decide(name, obs, versions)
        except FileNotFoundError:
            self.log.info("%s vanished from the DHS disk before it was copied", name)
            return
        except NotRegularFile as exc:
            self.reject(name, obs, f"refused: {exc}", result)
            return
        if action is Action.SKIP:
            self.log.debug("%s is already in the database (same size and md5)", name)
            self.settled[name] = obs
            result.skipped.append(name)
            return
        if action is Action.COPY:
            try:
                check_complete_fits(source)
            except NotRegularFile as exc:
                self.reject(name, obs, f"refused: {exc}", result)
                return
            except NotCompleteFits as exc:
                self.reject(name, obs, f"not a complete FITS file: {exc}", result)
                return
            if self.dryrun:
                self.log.info("Would copy %s to %s", name, self.dest_dir)
            else:
                self.log.info("Copying %s to %s", name, self.dest_dir)
                try:
                    copy_verified(source, self.dest_dir / name, expected=obs, mode=self.file_mode)
                except CopyError as exc:
                    self.log.warning("%s", exc)
                    return
                except OSError as exc:
                    self.reject(name, obs, f"cannot copy: {exc}", result)
                    return
            result.copied.append(name)
        self.add_to_ingest_queue(name)
        self.settled[name] = obs
        result.queued.append(name)

    def add_to_ingest_queue(self, name: str) -> None:
        if self.dryrun:
            self.log.info("Would add %s to IngestQueue", name)
            return
        self.log.info("Adding %s to IngestQueue", name)
        with self.session_factory() as session:
            # complete: the copy was renamed into place whole and verified, never half-written
            added = self.queue.add(session, name, "", complete=True)
            session.commit()
        if not added:
            self.log.debug("%s was already waiting in the IngestQueue", name)

    def reject(self, name: str, obs: Observation, reason: str, result: PassResult) -> None:
        """Report a file that fails validation once (per size and mtime), not every pass."""
        self.rejected[name] = obs
        result.rejected.append(name)
        self.log.critical("%s: %s; not copied (reported once until the file changes)", name, reason)


def _md5(path: Path) -> str:
    """md5 of a regular file, never through a symlink (NotRegularFile otherwise)."""
    with open_regular(path) as handle:
        return handle_md5(handle).md5
