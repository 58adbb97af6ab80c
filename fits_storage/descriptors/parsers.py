"""Turning one raw keyword value into a field value, or saying why it cannot be.

Every parser takes the value astropy read and returns the field's value, or raises
:class:`Malformed` with a reason that ends up in the row's notes (``"EXPTIME: expected a
number, got 'long'"``). ``None`` from a parser means "present but says nothing" (``UNKNOWN``):
the field stays NULL without a note.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time, timedelta
from typing import Any

_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2}):(\d{2}(?:\.\d*)?))?\s*$")
_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2}):(\d{2}(?:\.\d*)?)\s*$")
_SEXAGESIMAL = re.compile(r"^\s*([+-]?)\s*(\d{1,3})[:\s]+(\d{1,2})[:\s]+(\d{1,2}(?:\.\d*)?)\s*$")
_PERCENTILE = re.compile(r"^\s*(\d{1,3})\s*-?\s*percentile\s*$", re.IGNORECASE)
_BINNING = re.compile(r"^\s*(\d+)\s+(\d+)\s*$")
MJD_ZERO = datetime(1858, 11, 17)


class Malformed(ValueError):
    """A keyword is present but its value cannot be used; the message says why."""


def text(value: Any) -> str | None:
    """A string value, stripped (NUL bytes dropped); an empty string is no value."""
    if isinstance(value, bool):
        raise Malformed(f"expected a string, got {value!r}")
    stripped = str(value).replace("\x00", "").strip()
    return stripped or None


def number(value: Any) -> float:
    if isinstance(value, bool):
        raise Malformed(f"expected a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise Malformed(f"expected a number, got {value!r}") from None
    if not math.isfinite(result):
        raise Malformed(f"not a finite number ({value!r})")
    return result


def integer(value: Any) -> int:
    result = number(value)
    if result != int(result):
        raise Malformed(f"expected a whole number, got {value!r}")
    return int(result)


def positive_number(value: Any) -> float:
    result = number(value)
    if result < 0:
        raise Malformed(f"expected a number >= 0, got {value!r}")
    return result


def flag(value: Any) -> bool:
    """A FITS logical, or the usual spellings of one in a string."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().upper()
    if word in ("T", "TRUE", "YES", "Y", "1", "ON", "IN"):
        return True
    if word in ("F", "FALSE", "NO", "N", "0", "OFF", "OUT"):
        return False
    raise Malformed(f"expected a logical, got {value!r}")


def parse_sexagesimal(value: str) -> float | None:
    """``"12:34:56.7"`` or ``"-01 02 03"`` as a decimal number, or None if not that form."""
    match = _SEXAGESIMAL.match(value)
    if not match:
        return None
    sign, whole, minutes, seconds = match.groups()
    if int(minutes) >= 60 or float(seconds) >= 60:
        return None
    result = int(whole) + int(minutes) / 60 + float(seconds) / 3600
    return -result if sign == "-" else result


def _angle(value: Any, hours: bool, low: float, high: float) -> float:
    if isinstance(value, str) and (":" in value or " " in value.strip()):
        parsed = parse_sexagesimal(value)
        if parsed is None:
            raise Malformed(f"malformed sexagesimal value {value!r}")
        degrees = parsed * 15 if hours else parsed
    else:
        degrees = number(value)
    if not low <= degrees <= high:
        raise Malformed(f"{value!r} is outside {low}..{high} degrees")
    return degrees


def right_ascension(value: Any) -> float:
    """Degrees, from degrees or a sexagesimal string in hours."""
    return _angle(value, hours=True, low=0.0, high=360.0)


def declination(value: Any) -> float:
    return _angle(value, hours=False, low=-90.0, high=90.0)


def elevation(value: Any) -> float:
    """Degrees above the horizon, from degrees or a sexagesimal string (FitsStorage reads a
    string ELEVATIO as degrees:minutes:seconds)."""
    return _angle(value, hours=False, low=-90.0, high=90.0)


def rotator_angle(value: Any) -> float:
    """A rotator position angle in degrees; beyond one turn either way is no angle (DRAGONS'
    ``cass_rotator_pa`` gives None past 360)."""
    degrees = number(value)
    if abs(degrees) > 360.0:
        raise Malformed(f"{value!r} is outside -360.0..360.0 degrees")
    return degrees


def _clock(hours: int, minutes: int, seconds: float) -> time:
    if hours > 23 or minutes > 59 or seconds >= 61:
        raise ValueError("time out of range")
    if seconds == 0:
        return time(hours, minutes)
    return (datetime.combine(date.min, time(hours, minutes)) + timedelta(seconds=seconds)).time()


def parse_date(value: str) -> tuple[date, time | None] | None:
    """``YYYY-MM-DD`` with an optional ``Thh:mm:ss[.s]``; None if malformed."""
    match = _DATE.match(value)
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


def parse_time(value: str) -> time | None:
    match = _TIME.match(value)
    if not match:
        return None
    try:
        return _clock(int(match[1]), int(match[2]), float(match[3]))
    except ValueError:
        return None


def date_and_time(value: Any) -> tuple[date, time | None]:
    parsed = parse_date(str(value)) if not isinstance(value, bool) else None
    if parsed is None:
        raise Malformed(f"malformed date {value!r}")
    return parsed


def clock_time(value: Any) -> time:
    parsed = parse_time(str(value)) if not isinstance(value, bool) else None
    if parsed is None:
        raise Malformed(f"malformed time {value!r}")
    return parsed


def midnight_datetime(value: Any) -> datetime:
    """A date (and time if given) as a datetime: RELEASE."""
    day, clock = date_and_time(value)
    return datetime.combine(day, clock or time())


def mjd_datetime(value: Any) -> datetime:
    days = number(value)
    if not 0 < days < 200000:
        raise Malformed(f"{value!r} is not a plausible MJD")
    return MJD_ZERO + timedelta(days=days)


def binning(value: Any) -> str:
    """CCDSUM ``"2 2"`` as ``"2x2"``."""
    match = _BINNING.match(str(value))
    if not match:
        raise Malformed(f"malformed binning {value!r}")
    return f"{int(match[1])}x{int(match[2])}"


def percentile(value: Any) -> str | None:
    """RAWIQ/RAWCC/RAWWV/RAWBG as FitsStorage stores them: the percentile, ``Any`` as 100;
    ``UNKNOWN`` says nothing (NULL, no note)."""
    word = str(value).strip()
    if word.upper() in ("UNKNOWN", ""):
        return None
    if word.upper() == "ANY":
        return "100"
    match = _PERCENTILE.match(word)
    if not match or not 0 < int(match[1]) <= 100:
        raise Malformed(f"expected 'NN-percentile' or 'Any', got {value!r}")
    return str(int(match[1]))
