"""What ``POST /update_headers`` may set, checked, and turned into primary-header keywords.

The values an item may carry, as the system we replace accepts them:

* ``qa_state``: Pass, Usable, Fail, CHECK or Undefined (any case), written as the pair
  RAWGEMQA/RAWPIREQ the observatory uses (ingest reads them back the same way);
* ``raw_site``: one or more of iq20 … wvany (a list, or a comma-separated string), each
  setting RAWIQ, RAWCC, RAWWV or RAWBG;
* ``release``: a date, ``YYYY-MM-DD``, written as RELEASE;
* ``generic``: named keywords with simple values, as ``[["KEY", value], …]`` (the staff
  script's form) or ``{"KEY": value}``.

Everything is checked before anything is queued; a bad value raises BadValue with a reason
the client can act on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

QA_STATES: dict[str, tuple[str, str]] = {
    "pass": ("USABLE", "YES"),
    "usable": ("USABLE", "NO"),
    "fail": ("BAD", "NO"),
    "check": ("CHECK", "CHECK"),
    "undefined": ("UNKNOWN", "UNKNOWN"),
}
QA_NAMES = "Pass, Usable, Fail, CHECK, Undefined"

RAW_SITE: dict[str, tuple[str, str]] = {
    **{f"iq{p}": ("RAWIQ", f"{p}-percentile") for p in ("20", "70", "85")},
    "iqany": ("RAWIQ", "Any"),
    **{f"cc{p}": ("RAWCC", f"{p}-percentile") for p in ("50", "70", "80")},
    "ccany": ("RAWCC", "Any"),
    **{f"wv{p}": ("RAWWV", f"{p}-percentile") for p in ("20", "50", "80")},
    "wvany": ("RAWWV", "Any"),
    **{f"bg{p}": ("RAWBG", f"{p}-percentile") for p in ("20", "50", "80")},
    "bgany": ("RAWBG", "Any"),
}

# Keywords that say how the bytes are laid out or scaled: changing one would make the data
# mean something else, or make the file unreadable. Refused whatever the value.
STRUCTURAL = frozenset(
    {
        "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "END", "XTENSION", "PCOUNT", "GCOUNT",
        "BSCALE", "BZERO", "BLANK", "GROUPS", "THEAP", "TFIELDS", "ZIMAGE", "ZTABLE",
        "CHECKSUM", "DATASUM", "CONTINUE", "COMMENT", "HISTORY",
    }
)  # fmt: skip
STRUCTURAL_PATTERN = re.compile(r"(NAXIS|TFORM|TTYPE|TDIM|TBCOL|TSCAL|TZERO|TNULL|ZNAXIS)\d+")
KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}")
MAX_STRING = 68  # what fits in one card without a CONTINUE card
PRINTABLE = re.compile(r"[ -~]*")
VALUE_NAMES = ("qa_state", "raw_site", "release", "generic")

Value = str | int | float | bool


class BadValue(ValueError):
    """A value the client asked for that cannot be set; the message says why."""


def qa_state_keywords(value: Any) -> dict[str, Value]:
    if not isinstance(value, str) or value.lower() not in QA_STATES:
        raise BadValue(f"qa_state {value!r} is not one of {QA_NAMES}")
    gemqa, pireq = QA_STATES[value.lower()]
    return {"RAWGEMQA": gemqa, "RAWPIREQ": pireq}


def raw_site_keywords(value: Any) -> dict[str, Value]:
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = [v.strip() for v in value]
    else:
        raise BadValue(f"raw_site must be a name such as 'iq70' or a list of them, not {value!r}")
    if not names:
        raise BadValue("raw_site is empty")
    keywords: dict[str, Value] = {}
    for name in names:
        if name.lower() not in RAW_SITE:
            raise BadValue(
                f"raw_site {name!r} is not one of iq20/70/85/any, cc50/70/80/any, "
                "wv20/50/80/any, bg20/50/80/any"
            )
        keyword, setting = RAW_SITE[name.lower()]
        if keywords.get(keyword, setting) != setting:
            raise BadValue(f"raw_site sets {keyword} twice ({keywords[keyword]} and {setting})")
        keywords[keyword] = setting
    return keywords


def release_keywords(value: Any) -> dict[str, Value]:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise BadValue(f"release {value!r} is not a date written YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise BadValue(f"release {value!r} is not a date: {exc}") from None
    return {"RELEASE": value}


def check_keyword(name: Any) -> str:
    """The keyword, upper case, if a client may set it."""
    if not isinstance(name, str) or not KEYWORD.fullmatch(name.upper()):
        raise BadValue(
            f"{name!r} is not a FITS keyword (1 to 8 of A-Z, 0-9, '_' and '-'; "
            "HIERARCH keywords cannot be set)"
        )
    keyword = name.upper()
    if keyword in STRUCTURAL or STRUCTURAL_PATTERN.fullmatch(keyword):
        raise BadValue(f"{keyword} describes the file's structure or data and cannot be set")
    return keyword


def check_simple_value(keyword: str, value: Any) -> Value:
    """A value that fits one FITS card: text of printable ASCII, a number or a boolean."""
    if isinstance(value, bool | int):
        if not isinstance(value, bool) and abs(value) >= 10**19:
            raise BadValue(f"{keyword}: the integer {value} is too large for a FITS card")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadValue(f"{keyword}: {value} is not a finite number")
        return value
    if isinstance(value, str):
        if not PRINTABLE.fullmatch(value):
            raise BadValue(f"{keyword}: the value holds characters a FITS card cannot (ASCII only)")
        if len(value) > MAX_STRING:
            raise BadValue(f"{keyword}: the value is longer than {MAX_STRING} characters")
        return value
    raise BadValue(f"{keyword}: {value!r} is not a text, number or true/false value")


def _is_pair(item: Any) -> bool:
    return isinstance(item, list | tuple) and len(item) == 2


def generic_keywords(value: Any) -> dict[str, Value]:
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list) and all(_is_pair(p) for p in value):
        pairs = [(p[0], p[1]) for p in value]
    else:
        raise BadValue('generic must be [["KEYWORD", value], ...] or {"KEYWORD": value, ...}')
    if not pairs:
        raise BadValue("generic names no keyword")
    keywords: dict[str, Value] = {}
    for name, setting in pairs:
        keyword = check_keyword(name)
        checked = check_simple_value(keyword, setting)
        if keyword in keywords and keywords[keyword] != checked:
            raise BadValue(f"generic sets {keyword} twice, to different values")
        keywords[keyword] = checked
    return keywords


MAPPERS = {
    "qa_state": qa_state_keywords,
    "raw_site": raw_site_keywords,
    "release": release_keywords,
    "generic": generic_keywords,
}


def keyword_changes(values: Any) -> dict[str, Value]:
    """The primary-header keywords ``values`` set (raise BadValue)."""
    if not isinstance(values, Mapping) or not values:
        raise BadValue(f"values must be an object naming at least one of {', '.join(VALUE_NAMES)}")
    changes: dict[str, Value] = {}
    for name, value in values.items():
        if name not in MAPPERS:
            raise BadValue(f"unknown value {name!r}: known are {', '.join(VALUE_NAMES)}")
        for keyword, setting in MAPPERS[name](value).items():
            if keyword in changes and changes[keyword] != setting:
                raise BadValue(f"{keyword} is set twice, to {changes[keyword]!r} and {setting!r}")
            changes[keyword] = setting
    return changes
