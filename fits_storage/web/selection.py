"""FitsStorage's URL selections: terms separated by '/', as the ODB and staff scripts write them
(``/jsonqastate/Gemini-North/present/RAW/obsid=GN-2018B-CAL-171-20``).

The terms understood: a site (``Gemini-North``, ``Gemini-South``, ``GN``, ``GS``); ``present``
/ ``notpresent``, ``canonical`` / ``notcanonical``; ``RAW`` (and FitsStorage's ``Raw``); a UT
date ``YYYYMMDD`` or an inclusive range ``YYYYMMDD-YYYYMMDD`` (``today``, ``yesterday``); a
program id, observation id or data label, bare or as ``progid=``, ``obsid=``, ``datalabel=``;
a file name, bare (``N20180329S0134.fits``) or as ``filename=``. Of a program, an observation
and a data label only the most specific counts, as in FitsStorage. A term that is none of
these is refused (400) rather than ignored, so a typo never widens a selection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

SITES = {
    "gemini-north": "Gemini-North",
    "gn": "Gemini-North",
    "gemini-south": "Gemini-South",
    "gs": "Gemini-South",
}
BOOLEANS = {
    "present": ("present", True),
    "notpresent": ("present", False),
    "canonical": ("canonical", True),
    "notcanonical": ("canonical", False),
}
PROGRAM = r"G[NS]-(?:\d{4}[AB]-[A-Z]+-\d+|(?:CAL|ENG)\d{8})"
PROGRAM_RE = re.compile(rf"^{PROGRAM}$")
OBSERVATION_RE = re.compile(rf"^{PROGRAM}-\d+$")
DATA_LABEL_RE = re.compile(rf"^{PROGRAM}-\d+-\d+(?:-[A-Za-z0-9_]+)*$")
DATE_RE = re.compile(r"^(\d{8})$")
DATE_RANGE_RE = re.compile(r"^(\d{8})-(\d{8})$")
DATE_LIKE_RE = re.compile(r"^[\d./-]+$")
FILENAME_RE = re.compile(r"^[A-Za-z0-9._+-]+\.fits(?:\.bz2)?$")


class SelectionError(ValueError):
    """A term that cannot be used; the message names it (an HTTP 400)."""


@dataclass
class UrlSelection:
    site: str | None = None
    present: bool | None = None
    canonical: bool | None = None
    raw: bool = False
    program_id: str | None = None
    observation_id: str | None = None
    data_label: str | None = None
    filename: str | None = None
    dates: tuple[date, date] | None = None  # [first, after last)
    given: set[str] = field(default_factory=set)  # the kinds of term given, for checks

    def only(self, allowed: set[str], what: str) -> None:
        """Refuse kinds of term that mean nothing for ``what``."""
        if extra := self.given - allowed:
            raise SelectionError(f"{what} cannot be selected by {', '.join(sorted(extra))}")


def _day(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError as exc:
        raise SelectionError(f"not a date (YYYYMMDD): {text!r}") from exc


def _dates(term: str, today: date) -> tuple[date, date] | None:
    if term == "today":
        return today, today + timedelta(days=1)
    if term == "yesterday":
        return today - timedelta(days=1), today
    if DATE_RE.match(term):
        day = _day(term)
        return day, day + timedelta(days=1)
    if match := DATE_RANGE_RE.match(term):
        first, last = _day(match.group(1)), _day(match.group(2))
        if last < first:
            raise SelectionError(f"date range {term!r} ends before it starts")
        return first, last + timedelta(days=1)
    return None


def _identify(value: str, selection: UrlSelection, term: str) -> None:
    """A program id, observation id or data label: which one it is, by its form."""
    if DATA_LABEL_RE.match(value):
        selection.data_label = value
    elif OBSERVATION_RE.match(value):
        selection.observation_id = value
    elif PROGRAM_RE.match(value) or term.startswith("progid="):
        selection.program_id = value
    elif DATE_LIKE_RE.match(value):  # 2025-11-23, 2025112: a date written otherwise
        raise SelectionError(
            f"not a date (YYYYMMDD) or a date range (YYYYMMDD-YYYYMMDD): {term!r}"
        )
    else:
        raise SelectionError(f"not a program id, observation id or data label: {term!r}")


def parse_url_selection(text: str, today: date | None = None) -> UrlSelection:
    """The selection the terms of ``text`` describe; SelectionError for a term not understood."""
    today = today or datetime.now(UTC).date()
    selection = UrlSelection()
    for term in filter(None, text.split("/")):
        key, sep, value = term.partition("=")
        value = value.strip()
        if term.lower() in SITES:
            selection.site, kind = SITES[term.lower()], "site"
        elif term.lower() in BOOLEANS:
            name, flag = BOOLEANS[term.lower()]
            setattr(selection, name, flag)
            kind = name
        elif term in ("RAW", "Raw"):
            selection.raw, kind = True, "RAW"
        elif (dates := _dates(term, today)) is not None:
            selection.dates, kind = dates, "date"
        elif sep and key == "filename" and value:
            selection.filename, kind = value, "filename"
        elif sep and key == "obsid" and value:
            selection.observation_id, kind = value, "observation"
        elif sep and key == "datalabel" and value:
            selection.data_label, kind = value, "observation"
        elif sep and key == "progid" and value:
            _identify(value, selection, term)
            kind = "observation"
        elif not sep and FILENAME_RE.match(term):
            selection.filename, kind = term, "filename"
        elif not sep:
            _identify(term, selection, term)
            kind = "observation"
        else:
            raise SelectionError(f"selection term not understood: {term!r}")
        selection.given.add(kind)
    if selection.data_label:
        selection.observation_id = selection.program_id = None
    if selection.observation_id:
        selection.program_id = None
    return selection
