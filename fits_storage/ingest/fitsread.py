"""Opening a stored FITS file: its structure checked, its headers and verification collected.

Structure is checked against the size of the uncompressed data: a file shorter than its
headers describe is truncated, one whose size is not a whole number of 2880-byte blocks has
wrong padding, and bytes after the last HDU that do not form a header are corruption. Each
is an :class:`IngestError` with a one-line reason, raised before anything is written.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from fits_storage.ingest.astropylookups import settled_lookups
from fits_storage.ingest.errors import IngestError
from fits_storage.ingest.fitsheader import HeaderFields, extract_header_fields
from fits_storage.ingest.verify import VerifyReport, astropy_report

BLOCK = 2880
CARD = 80
_UNPRINTABLE = re.compile(rb"[^\x20-\x7e]")
_UNPRINTABLE_TEXT = re.compile(r"[^\n\x20-\x7e]")


@dataclass(frozen=True)
class FitsContents:
    header_fields: HeaderFields
    fulltext: str
    astropy: VerifyReport
    hdu_count: int


def _first_line(text: str) -> str:
    """A reason for the queue's error column (PostgreSQL refuses NUL in text)."""
    lines = [line.strip() for line in str(text).replace("\x00", "\\x00").splitlines()]
    return " ".join([line for line in lines if line][:2])[:300]


def _structure_error(hdulist: fits.HDUList, data_size: int) -> str | None:
    """Truncation or wrong padding, from the offsets astropy recorded while reading.

    ``HDU.fileinfo()``, not ``HDUList.fileinfo(i)``: the latter re-serialises every header to
    check for resizing on each call (quadratic in the HDU count, ~3 ms a file).
    """
    ends = []
    for hdu in hdulist:
        info = hdu.fileinfo()
        ends.append((info["datLoc"], info["datSpan"]))
    expected = max(loc + span for loc, span in ends)
    if data_size < expected:
        last_loc, _ = ends[-1]
        unpadded = last_loc + hdulist[-1].size
        if data_size == unpadded and data_size % BLOCK:
            return (
                f"wrong padding: {data_size} bytes, the last data unit is not padded "
                f"to a multiple of {BLOCK} bytes"
            )
        return f"truncated: {data_size} bytes, but its headers describe {expected} bytes"
    if data_size % BLOCK:
        return f"wrong padding: {data_size} bytes is not a multiple of {BLOCK}"
    return None


def _header_text(header: fits.Header) -> str:
    return header.tostring(sep="\n", endcard=False, padding=False).rstrip()


def _cleaned_header(
    local: Path, hdu: fits.hdu.base._BaseHDU, index: int
) -> tuple[fits.Header, list[str]]:
    """The HDU's header re-read from the file's bytes, with the bytes astropy refuses in a card
    (a NUL ending a C string, control or non-ASCII bytes) dropped, and a note per card."""
    info = hdu.fileinfo()
    with open(local, "rb") as handle:
        handle.seek(info["hdrLoc"])
        raw = handle.read(info["datLoc"] - info["hdrLoc"])
    cards, notes = [], []
    for start in range(0, len(raw), CARD):
        card = raw[start : start + CARD]
        if _UNPRINTABLE.search(card):
            keyword = _UNPRINTABLE.sub(b"", card[:8]).decode("ascii").strip() or "(blank)"
            what = "NUL byte" if b"\x00" in card else "non-printable byte"
            notes.append(f"{keyword}: {what} removed from the card (HDU {index})")
            card = _UNPRINTABLE.sub(lambda m: b"" if m[0] == b"\x00" else b"?", card)
        cards.append(card.ljust(CARD))
    header = fits.Header.fromstring(b"".join(cards).decode("ascii"))
    return header, notes


def readable_headers(
    local: Path, hdulist: fits.HDUList
) -> tuple[list[fits.Header], str, list[str]]:
    """Every HDU's header, its full text (one card a line, HDUs introduced by a marker line),
    and notes on cards that had to be cleaned to be read at all.

    A header with bytes no card may hold is re-read cleaned from the file rather than failing
    the file.
    """
    headers, parts, notes = [], [], []
    for index, hdu in enumerate(hdulist):
        header = hdu.header
        try:
            text = _header_text(header)
        except ValueError:
            text = "\x00"  # a card astropy refuses: clean it below
        if _UNPRINTABLE_TEXT.search(text):
            header, cleaned_notes = _cleaned_header(local, hdu, index)
            notes.extend(cleaned_notes)
            text = _header_text(header)
        headers.append(header)
        parts.append(f"--- HDU {index}: {hdu.name or ''}".rstrip())
        parts.append(text)
    return headers, "\n".join(parts), notes


def read_fits(
    local: Path, data_size: int, label: str, filename: str | None = None
) -> FitsContents:
    """Read and check the file at ``local`` (``data_size``: its uncompressed size;
    ``filename``: the name it is stored under, the site's last resort)."""
    if data_size == 0:
        raise IngestError(f"{label}: empty file (0 bytes)")
    with settled_lookups():
        return _read_fits(local, data_size, label, filename)


def _read_fits(local: Path, data_size: int, label: str, filename: str | None) -> FitsContents:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)  # another object's finaliser, not the file
        try:
            hdulist = fits.open(local, memmap=False, lazy_load_hdus=False)
        except Exception as exc:  # noqa: BLE001 - astropy raises many kinds on bad input
            reason = _first_line(str(exc))
            if "No SIMPLE card" in reason:
                reason = "no SIMPLE card at the start of the file"
            header_trouble = [str(w.message) for w in caught if "Error validating" in str(w)]
            detail = f" ({_first_line(header_trouble[0])})" if header_trouble else ""
            raise IngestError(f"{label}: not a readable FITS file: {reason}{detail}") from exc
    try:
        opening = [
            str(w.message).strip() for w in caught if "may have been truncated" not in str(w)
        ]
        if len(hdulist) == 0:
            raise IngestError(f"{label}: not a readable FITS file: no HDUs")
        invalid = [m for m in opening if m.startswith("Error validating header")]
        problem = f"corrupt or truncated: {_first_line(invalid[0])}" if invalid else None
        problem = problem or _structure_error(hdulist, data_size)
        if problem is not None:
            raise IngestError(f"{label}: {problem}")
        try:
            # The report first: reading the cards later fixes in memory what it must report.
            report = astropy_report(hdulist, opening)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # astropy's fixes: already in the report
                headers, fulltext, notes = readable_headers(local, hdulist)
                fields = extract_header_fields(headers, filename)
        except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise IngestError(f"{label}: corrupt FITS headers: {_first_line(str(exc))}") from exc
        fields.notes[:0] = notes
        return FitsContents(fields, fulltext, report, len(hdulist))
    finally:
        try:
            hdulist.close()
        except Exception:  # noqa: BLE001, S110 - closing a damaged file may complain
            pass
