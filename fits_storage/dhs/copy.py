"""Copying one file from the DHS disk into storage_root, so that a crash never shows.

The source is opened without following symlinks and must be a regular file (checked on the
open descriptor, so nothing swapped in after the scan is read). It is read once, its md5
computed while copying (AtomicFile hashes what it writes); the copy is written under a
temporary name beside the destination, fsynced, re-read and checked against that md5 and size,
and only then renamed over the real name. The source's modification time is kept on the copy,
so the database (which records the copy's mtime) can later tell an unchanged DHS file without
hashing. The DHS disk is only ever read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from fits_storage.storage.atomic import AtomicFile
from fits_storage.storage.base import CHUNK, StorageError, StoredFile, open_regular

STALE_TEMPORARY_SECONDS = 3600


class CopyError(RuntimeError):
    """The copy was abandoned (source changed while read, or the copy did not verify)."""


@dataclass(frozen=True)
class Observation:
    """What a scan saw of a file: enough to tell whether it changed since."""

    size: int
    mtime_ns: int


def observe(path: Path) -> Observation:
    st = path.stat()
    return Observation(st.st_size, st.st_mtime_ns)


def _observe_fd(fd: int) -> Observation:
    st = os.fstat(fd)
    return Observation(st.st_size, st.st_mtime_ns)


def copy_verified(
    source: Path, dest: Path, *, expected: Observation | None = None, mode: int | None = None
) -> StoredFile:
    """Copy ``source`` to ``dest`` atomically and verified; raise CopyError if it cannot be.

    The source must not change while it is read (same size and mtime before and after), nor
    differ from ``expected``, what the scan that found it complete saw. A source that is not a
    regular file raises NotRegularFile (an OSError) and nothing is written. ``mode``: the
    copy's permissions (``file_mode``); None leaves them to the umask.
    """
    with open_regular(source) as handle:
        before = _observe_fd(handle.fileno())
        if expected is not None and before != expected:
            raise CopyError(f"{source.name} changed since it was checked; will try again")
        try:
            with AtomicFile(dest, mode) as out:
                while chunk := handle.read(CHUNK):
                    out.write(chunk)  # AtomicFile hashes what it writes: the source's md5
                after = _observe_fd(handle.fileno())
                if after != before or out.size != before.size:
                    raise CopyError(
                        f"{source.name} changed while being copied ({before.size} -> "
                        f"{after.size} bytes); will try again once it is stable"
                    )
                # The re-read checks the bytes on disk against the md5 of what was read.
                stored = out.commit(size=before.size, reread=True)
        except StorageError as exc:
            raise CopyError(f"{source.name}: copy did not verify: {exc}") from exc
    os.utime(dest, ns=(time.time_ns(), before.mtime_ns))
    return stored


def remove_stale_temporaries(
    directory: Path, older_than: float = STALE_TEMPORARY_SECONDS
) -> list[str]:
    """Remove our temporary files (``.<name>.*.part``) left behind by a crash long ago."""
    removed = []
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(".part") and ".fits" in name.lower()):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(name)
        except FileNotFoundError:
            continue
    return removed
