"""The observatory metadata of a FITS file, as the ``header`` table holds it.

Every field comes from named keywords of the primary header (binning from the first
extension). A missing or malformed keyword gives NULL and a line in ``notes``, never an
exception: a file with odd headers must still be ingested so that people can find and fix it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from astropy.io import fits

from fits_storage.orm import Header

# (keyword, factor to micrometres), first present wins
CENTRAL_WAVELENGTH_KEYWORDS = (("CENTWAVE", 1e-3), ("GRWLEN", 1e-3), ("GRATWAVE", 1.0))
DISPERSER_KEYWORDS = ("GRATING", "DISPERSR", "GRISM")
FILTER_KEYWORDS = ("FILTER", "FILTER1", "FILTER2", "FILTER3")
_OPEN_FILTER = re.compile(r"^(open|empty|clear|none)", re.IGNORECASE)
_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2}):(\d{2}(?:\.\d*)?))?\s*$")
_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2}):(\d{2}(?:\.\d*)?)\s*$")
_SEXAGESIMAL = re.compile(r"^\s*([+-]?)\s*(\d{1,3})[:\s]+(\d{1,2})[:\s]+(\d{1,2}(?:\.\d*)?)\s*$")


@dataclass
class HeaderFields:
    """Column values for one ``header`` row, plus what was wrong with the input."""

    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_row(self) -> Header:
        return Header(**self.values, notes="\n".join(self.notes) or None)


class _Reader:
    """Reads keywords from one header, turning every problem into a note."""

    def __init__(self, header: fits.Header, notes: list[str], where: str = "") -> None:
        self.header = header
        self.notes = notes
        self.where = where

    def note(self, message: str) -> None:
        self.notes.append(f"{message}{self.where}")

    def raw(self, keyword: str, required: bool = True) -> Any:
        try:
            value = self.header.get(keyword)
        except Exception as exc:  # noqa: BLE001 - astropy raises assorted errors on bad cards
            self.note(f"{keyword}: {self._unparsable(keyword, exc)}")
            return None
        if value is None or isinstance(value, fits.card.Undefined):
            if required:
                self.note(f"{keyword}: missing")
            return None
        return value

    def _unparsable(self, keyword: str, exc: Exception) -> str:
        """What is wrong with a card astropy cannot parse (``NaN``, ``Inf``…), from its text."""
        try:
            value = self.header.cards[keyword].image[10:].split("/", 1)[0].strip()
        except Exception:  # noqa: BLE001
            return f"unreadable card ({exc})"
        return f"not a valid FITS value ({value!r})"

    def string(self, keyword: str, required: bool = True) -> str | None:
        value = self.raw(keyword, required)
        if value is None:
            return None
        if isinstance(value, bool):
            self.note(f"{keyword}: expected a string, got {value!r}")
            return None
        text = str(value).replace("\x00", "").strip()
        return text or None

    def number(self, keyword: str, required: bool = True) -> float | None:
        value = self.raw(keyword, required)
        if value is None:
            return None
        return self.to_float(keyword, value)

    def to_float(self, keyword: str, value: Any) -> float | None:
        if isinstance(value, bool):
            self.note(f"{keyword}: expected a number, got {value!r}")
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.note(f"{keyword}: expected a number, got {value!r}")
            return None
        if not math.isfinite(number):
            self.note(f"{keyword}: not a finite number ({value!r})")
            return None
        return number


def _column_lengths() -> dict[str, int]:
    lengths = {}
    for column in Header.__table__.columns:
        length = getattr(column.type, "length", None)
        if length:
            lengths[column.name] = length
    return lengths


COLUMN_LENGTHS = _column_lengths()


def parse_sexagesimal(text: str) -> float | None:
    """``"12:34:56.7"`` or ``"-01 02 03"`` as a decimal number, or None if not that form."""
    match = _SEXAGESIMAL.match(text)
    if not match:
        return None
    sign, whole, minutes, seconds = match.groups()
    if int(minutes) >= 60 or float(seconds) >= 60:
        return None
    value = int(whole) + int(minutes) / 60 + float(seconds) / 3600
    return -value if sign == "-" else value


def _angle(reader: _Reader, keyword: str, hours: bool, low: float, high: float) -> float | None:
    value = reader.raw(keyword)
    if value is None:
        return None
    if isinstance(value, str) and (":" in value or " " in value.strip()):
        parsed = parse_sexagesimal(value)
        if parsed is None:
            reader.note(f"{keyword}: malformed sexagesimal value {value!r}")
            return None
        degrees = parsed * 15 if hours else parsed
    else:
        number = reader.to_float(keyword, value)
        if number is None:
            return None
        degrees = number
    if not low <= degrees <= high:
        reader.note(f"{keyword}: {value!r} is outside {low}..{high} degrees")
        return None
    return degrees


def parse_date(text: str) -> tuple[date, time | None] | None:
    """``YYYY-MM-DD`` with an optional ``Thh:mm:ss[.s]``; None if malformed."""
    match = _DATE.match(text)
    if not match:
        return None
    y, mo, d, h, mi, s = match.groups()
    try:
        day = date(int(y), int(mo), int(d))
        if h is None:
            return day, None
        return day, _clock(int(h), int(mi), float(s))
    except ValueError:
        return None


def _clock(hours: int, minutes: int, seconds: float) -> time:
    if hours > 23 or minutes > 59 or seconds >= 61:
        raise ValueError("time out of range")
    return (
        time(hours, minutes)
        if seconds == 0
        else (datetime.combine(date.min, time(hours, minutes)) + timedelta(seconds=seconds)).time()
    )


def parse_time(text: str) -> time | None:
    match = _TIME.match(text)
    if not match:
        return None
    try:
        return _clock(int(match[1]), int(match[2]), float(match[3]))
    except ValueError:
        return None


def _ut_datetime(reader: _Reader) -> datetime | None:
    date_text = reader.string("DATE-OBS")
    if date_text is None:
        return None
    parsed = parse_date(date_text)
    if parsed is None:
        reader.note(f"DATE-OBS: malformed date {date_text!r}")
        return None
    day, clock = parsed
    if clock is not None:
        return datetime.combine(day, clock)
    for keyword in ("TIME-OBS", "UT"):
        time_text = reader.string(keyword, required=False)
        if time_text is None:
            continue
        clock = parse_time(time_text)
        if clock is None:
            reader.note(f"{keyword}: malformed time {time_text!r}")
            continue
        return datetime.combine(day, clock)
    reader.note("TIME-OBS/UT: missing; UT date-time left NULL")
    return None


def _release(reader: _Reader) -> datetime | None:
    text = reader.string("RELEASE")
    if text is None:
        return None
    parsed = parse_date(text)
    if parsed is None:
        reader.note(f"RELEASE: malformed date {text!r}")
        return None
    return datetime.combine(parsed[0], parsed[1] or time())


def _filter_name(reader: _Reader) -> str | None:
    """Filters in the beam joined by ``&``; open positions dropped; ``open`` if nothing else."""
    present = [
        v for v in (reader.string(k, required=False) for k in FILTER_KEYWORDS) if v is not None
    ]
    if not present:
        reader.note("FILTER/FILTER1/FILTER2: missing")
        return None
    real = [v for v in present if not _OPEN_FILTER.match(v)]
    return "&".join(real) if real else "open"


def _disperser(reader: _Reader) -> str | None:
    for keyword in DISPERSER_KEYWORDS:
        value = reader.string(keyword, required=False)
        if value is not None:
            return value
    return None


def _central_wavelength(reader: _Reader, disperser: str | None) -> float | None:
    """Micrometres; only meaningful with a disperser in the beam."""
    if disperser is None or disperser.lower().startswith(("mirror", "open")):
        return None
    for keyword, factor in CENTRAL_WAVELENGTH_KEYWORDS:
        value = reader.number(keyword, required=False)
        if value is not None:
            return value * factor
    reader.note("CENTWAVE/GRWLEN/GRATWAVE: missing")
    return None


def _binning(reader: _Reader) -> str | None:
    text = reader.string("CCDSUM")
    if text is None:
        return None
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        reader.note(f"CCDSUM: malformed binning {text!r}")
        return None
    return f"{int(parts[0])}x{int(parts[1])}"


def qa_state(rawgemqa: str | None, rawpireq: str | None) -> str | None:
    """The observatory's QA state from RAWGEMQA and RAWPIREQ, as the archive has shown it."""
    if rawgemqa is None and rawpireq is None:
        return None
    gemqa = (rawgemqa or "UNKNOWN").upper()
    pireq = (rawpireq or "UNKNOWN").upper()
    if gemqa == "BAD":
        return "Fail"
    if gemqa == "CHECK" or pireq == "CHECK":
        return "CHECK"
    if gemqa == "USABLE" and pireq == "YES":
        return "Pass"
    if gemqa == "USABLE" and pireq == "NO":
        return "Usable"
    return "Undefined"


def program_flags(program_id: str | None) -> dict[str, bool | None]:
    """Engineering / science-verification / calibration, from the program id's form."""
    if program_id is None:
        return {"engineering": None, "science_verification": None, "calibration_program": None}
    upper = program_id.upper()
    return {
        "engineering": "-ENG" in upper,
        "science_verification": "-SV-" in upper or upper.endswith("-SV"),
        "calibration_program": "-CAL" in upper,
    }


def _headers(hdus: Iterable[Any]) -> list[fits.Header]:
    return [h.header if hasattr(h, "header") else h for h in hdus]


def extract_header_fields(hdus: fits.HDUList | Sequence[fits.Header]) -> HeaderFields:
    """The ``header`` row's values from an HDUList (or its headers, primary first)."""
    headers = _headers(hdus)
    result = HeaderFields()
    if not headers:
        result.notes.append("no HDUs")
        return result
    primary = _Reader(headers[0], result.notes)
    v = result.values
    v["program_id"] = primary.string("GEMPRGID")
    v["observation_id"] = primary.string("OBSID")
    v["data_label"] = primary.string("DATALAB")
    v["telescope"] = primary.string("TELESCOP")
    v["instrument"] = primary.string("INSTRUME")
    v["ut_datetime"] = _ut_datetime(primary)
    v["observation_type"] = primary.string("OBSTYPE")
    v["observation_class"] = primary.string("OBSCLASS")
    v["object"] = primary.string("OBJECT")
    v["ra"] = _angle(primary, "RA", hours=True, low=0.0, high=360.0)
    v["dec"] = _angle(primary, "DEC", hours=False, low=-90.0, high=90.0)
    v["filter_name"] = _filter_name(primary)
    v["exposure_time"] = primary.number("EXPTIME")
    v["disperser"] = _disperser(primary)
    v["central_wavelength"] = _central_wavelength(primary, v["disperser"])
    if len(headers) > 1:
        v["detector_binning"] = _binning(_Reader(headers[1], result.notes, " (extension 1)"))
    else:
        v["detector_binning"] = _binning(primary)
    v["airmass"] = primary.number("AIRMASS")
    v["qa_state"] = qa_state(
        primary.string("RAWGEMQA", required=False), primary.string("RAWPIREQ", required=False)
    )
    if v["qa_state"] is None:
        result.notes.append("RAWGEMQA/RAWPIREQ: missing")
    v["release"] = _release(primary)
    v.update(program_flags(v["program_id"]))
    for name, length in COLUMN_LENGTHS.items():
        value = v.get(name)
        if isinstance(value, str) and len(value) > length:
            result.notes.append(f"{name}: value longer than {length} characters, truncated")
            v[name] = value[:length]
    return result
