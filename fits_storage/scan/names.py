"""The name rules: which directory entries are temporary files, FITS files, and the summit's
other files (observing logs, miscellaneous files).

One place, because copy_from_dhs and add_to_ingest_queue must agree: a file one of them skips as
still being written must be skipped by the other too. The DHS writes FITS files only
(``skip_reason``); ingest also takes observing logs and miscellaneous files
(``ingest_skip_reason``).
"""

from __future__ import annotations

from enum import StrEnum

FITS_SUFFIXES = (".fits", ".fits.bz2", ".fits.gz", ".fit")
TEMPORARY_PREFIXES = (".", "tmp")
TEMPORARY_SUFFIXES = ("~", ".tmp", ".part")


def is_temporary(name: str) -> bool:
    """Editors, rsync, the DHS and our own copier write under names like these before renaming."""
    lowered = name.lower()
    return lowered.startswith(TEMPORARY_PREFIXES) or lowered.endswith(TEMPORARY_SUFFIXES)


def is_fits_name(name: str) -> bool:
    """A name the system ingests: .fits, .fits.bz2, .fits.gz or .fit, in any case."""
    return name.lower().endswith(FITS_SUFFIXES)


def skip_reason(name: str) -> str | None:
    """Why a file of this name is never picked up, or None if it may be."""
    if is_temporary(name):
        return "tmp file"
    if not is_fits_name(name):
        return "non-FITS name"
    return None


OBSLOG_SUFFIX = "_obslog.txt"
MISCFILE_PREFIX = "miscfile_"
MISCFILE_META_SUFFIX = ".json"


class FileKind(StrEnum):
    """What ingest makes of a file: header rows, an ``obslog`` row or a ``miscfile`` row."""

    FITS = "fits"
    OBSLOG = "obslog"  # <YYYYMMDD>_<program>_obslog.txt
    MISCFILE = "miscfile"  # miscfile_<name>, with its metadata in miscfile_<name>.json


def is_miscfile_meta(name: str) -> bool:
    """``miscfile_<name>.json``: the metadata of ``miscfile_<name>``, ingested with it."""
    return name.startswith(MISCFILE_PREFIX) and name.endswith(MISCFILE_META_SUFFIX)


def miscfile_meta_name(name: str) -> str:
    return name + MISCFILE_META_SUFFIX


def miscfile_of_meta(name: str) -> str:
    return name.removesuffix(MISCFILE_META_SUFFIX)


def file_kind(name: str) -> FileKind | None:
    """The kind of file ``name`` is, or None when ingest takes no file of that name (a
    miscfile's metadata is no file of its own: it is read with its miscfile)."""
    if name.startswith(MISCFILE_PREFIX):
        return None if is_miscfile_meta(name) else FileKind.MISCFILE
    if name.endswith(OBSLOG_SUFFIX):
        return FileKind.OBSLOG
    if is_fits_name(name):
        return FileKind.FITS
    return None


def ingest_skip_reason(name: str) -> str | None:
    """Why add_to_ingest_queue never queues a file of this name, or None if it may."""
    if is_temporary(name):
        return "tmp file"
    if is_miscfile_meta(name):
        return "miscfile metadata (read with its miscfile)"
    if file_kind(name) is None:
        return "non-FITS name"
    return None
