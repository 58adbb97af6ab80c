"""Is a file on the DHS disk a complete FITS file? Headers only: cheap enough for every new file.

The DHS writes a file in place, so "complete" cannot be seen from the name. Besides age and a
stable size, the structure must add up: every header parses, and the data units they describe
end exactly at the end of the file (no truncation, no missing padding).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import BinaryIO

from astropy.io import fits

from fits_storage.storage.base import NotRegularFile, open_regular

BLOCK = 2880


class NotCompleteFits(ValueError):
    """The file is not (yet, or ever) a complete FITS file; the message says why, in one line."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:300]


def check_complete_fits(path: Path) -> None:
    """Raise NotCompleteFits unless ``path`` opens as FITS and its HDUs fill it exactly.

    Only a regular file is read (NotRegularFile otherwise): a symlink is never followed.
    """
    compressed = path.name.lower().endswith((".bz2", ".gz"))
    try:
        with open_regular(path) as handle, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _check_structure(handle, compressed)
    except (NotCompleteFits, NotRegularFile):
        raise
    except (OSError, ValueError, EOFError, IndexError, KeyError, TypeError) as exc:
        raise NotCompleteFits(f"does not open as FITS: {_one_line(exc)}") from exc
    for warning in caught:
        text = _one_line(warning.message)
        if any(s in text for s in ("truncated", "Header size is not multiple", "extra bytes")):
            raise NotCompleteFits(text)


def _check_structure(handle: BinaryIO, compressed: bool) -> None:
    size = os.fstat(handle.fileno()).st_size
    if size == 0:
        raise NotCompleteFits("empty file")
    if not compressed and size % BLOCK:
        raise NotCompleteFits(
            f"{size} bytes is not a multiple of {BLOCK} (incomplete or padded wrongly)"
        )
    with fits.open(handle, lazy_load_hdus=True, memmap=False) as hdulist:
        count = len(hdulist)  # reads every header, no data
        if count == 0:
            raise NotCompleteFits("no HDU found")
        if not compressed:
            last = hdulist.fileinfo(count - 1)
            end = last["datLoc"] + last["datSpan"]
            if end != size:
                raise NotCompleteFits(
                    f"headers describe {end} bytes but the file has {size} "
                    "(truncated or extra bytes)"
                )
