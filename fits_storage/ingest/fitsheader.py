"""The observatory metadata of a FITS file, as the ``header`` table holds it.

The fields are computed by the descriptor layer (:mod:`fits_storage.descriptors`: one
declarative mapping per instrument); this module is ingest's entry to it. A missing or
malformed keyword gives NULL and a line in ``notes``, never an exception: a file with odd
headers must still be ingested so that people can find and fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from astropy.io import fits

from fits_storage.descriptors import describe
from fits_storage.descriptors.generic import program_flags, qa_state
from fits_storage.descriptors.parsers import parse_date, parse_sexagesimal, parse_time
from fits_storage.orm import Header

__all__ = [
    "COLUMN_LENGTHS",
    "HeaderFields",
    "extract_header_fields",
    "parse_date",
    "parse_sexagesimal",
    "parse_time",
    "program_flags",
    "qa_state",
]


@dataclass
class HeaderFields:
    """Column values for one ``header`` row, plus what was wrong with the input."""

    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_row(self) -> Header:
        return Header(**self.values, notes="\n".join(self.notes) or None)


def _column_lengths() -> dict[str, int]:
    lengths = {}
    for column in Header.__table__.columns:
        length = getattr(column.type, "length", None)
        if length:
            lengths[column.name] = length
    return lengths


COLUMN_LENGTHS = _column_lengths()


def _headers(hdus: Iterable[Any]) -> list[fits.Header]:
    return [h.header if hasattr(h, "header") else h for h in hdus]


def extract_header_fields(
    hdus: fits.HDUList | Sequence[fits.Header], filename: str | None = None
) -> HeaderFields:
    """The ``header`` row's values from an HDUList (or its headers, primary first).

    ``filename``: the stored name, the site's last resort when no keyword names it.
    """
    described = describe(_headers(hdus), filename)
    result = HeaderFields(described.values, described.notes)
    values = result.values
    for name, length in COLUMN_LENGTHS.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > length:
            result.notes.append(f"{name}: value longer than {length} characters, truncated")
            values[name] = value[:length]
    return result
