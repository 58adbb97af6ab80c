"""The name rules: which directory entries are temporary files and which are FITS files.

One place, because copy_from_dhs and add_to_ingest_queue must agree: a file one of them skips as
still being written must be skipped by the other too.
"""

from __future__ import annotations

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
