"""One frame's headers as the descriptors see them: keywords read once, problems noted.

Reading a keyword through astropy costs a few microseconds and can raise on a bad card; the
frame asks astropy once per (HDU, keyword), keeps the answer, and turns every problem into a
note rather than an exception: a file with odd headers must still be ingested so that people
can find and fix it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from astropy.io import fits

if TYPE_CHECKING:
    from fits_storage.descriptors.mapping import InstrumentMapping

_ABSENT = object()


class Frame:
    """The headers of one file (primary first), the values computed so far and the notes."""

    def __init__(
        self, headers: Sequence[fits.Header], notes: list[str], filename: str | None = None
    ) -> None:
        self.headers = headers
        self.notes = notes
        self.filename = filename
        self.values: dict[str, Any] = {}
        self.mapping: InstrumentMapping | None = None
        self._cache: dict[tuple[int, str], Any] = {}
        self._primary_keywords: frozenset[str] | None = None
        self._raw: bool | None = None

    @property
    def extension_count(self) -> int:
        return max(0, len(self.headers) - 1)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def get(self, keyword: str, hdu: int = 0) -> Any:
        """The value of ``keyword`` in HDU ``hdu`` (0: primary), or None if absent or
        unreadable (then noted)."""
        key = (hdu, keyword)
        value = self._cache.get(key, _ABSENT)
        if value is _ABSENT:
            value = self._read(keyword, hdu)
            self._cache[key] = value
        return value

    def _read(self, keyword: str, hdu: int) -> Any:
        if hdu >= len(self.headers):
            return None
        header = self.headers[hdu]
        value = card_value(header, keyword)
        if value is FALLBACK:
            try:
                value = header.get(keyword)
            except Exception as exc:  # noqa: BLE001 - astropy raises assorted errors on bad cards
                self.note(f"{keyword}: {self._unparsable(header, keyword, exc)}{where(hdu)}")
                return None
        if value is None or isinstance(value, fits.card.Undefined):
            return None
        if isinstance(value, str):
            value = value.replace("\x00", "").strip()
            return value or None
        return value

    @staticmethod
    def _unparsable(header: fits.Header, keyword: str, exc: Exception) -> str:
        """What is wrong with a card astropy cannot parse (``NaN``, ``Inf``…), from its text."""
        try:
            value = header.cards[keyword].image[10:].split("/", 1)[0].strip()
        except Exception:  # noqa: BLE001
            return f"unreadable card ({exc})"
        return f"not a valid FITS value ({value!r})"

    def extension_values(self, keyword: str) -> list[Any]:
        """``keyword`` in every extension (None where absent)."""
        return [self.get(keyword, hdu) for hdu in range(1, len(self.headers))]

    def has(self, keyword: str) -> bool:
        return keyword in self.primary_keywords

    @property
    def primary_keywords(self) -> frozenset[str]:
        if self._primary_keywords is None:
            first = self.headers[0] if self.headers else None
            indices = getattr(first, "_keyword_indices", None)
            if first is None:
                self._primary_keywords = frozenset()
            elif isinstance(indices, dict):
                self._primary_keywords = frozenset(indices)
            else:
                self._primary_keywords = frozenset(first.keys())
        return self._primary_keywords

    @property
    def raw(self) -> bool:
        """Whether no reduction software has touched the frame (no GEM-TLM, no PREPARE)."""
        if self._raw is None:
            keywords = self.primary_keywords
            self._raw = "GEM-TLM" not in keywords and not any("PREPAR" in k for k in keywords)
        return self._raw

    def missing(self, message: str) -> None:
        """Note a keyword missing that raw data of this instrument always has (processed
        data may legitimately lack it: mosaicked frames have no amplifier keywords)."""
        if self.raw:
            self.note(message)

    def upper(self, keyword: str, hdu: int = 0) -> str:
        """The value as an upper-case string ('' if absent): for comparisons in tag rules."""
        value = self.get(keyword, hdu)
        return "" if value is None else str(value).upper()


# -- reading card values without astropy's per-card machinery -------------------------------
#
# astropy parses a card's value through its configuration system and several regular
# expressions (some 15 us a card); a frame's fields read about a hundred. The common forms
# (strings, logicals, integers, reals) are read here straight from the card's 80 characters;
# anything else (long strings, complex numbers, invalid values) is left to astropy, which
# also reports what is wrong with a bad card.

FALLBACK = object()
_INTEGER = re.compile(r"^[+-]?\d+$")
_REAL = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?$")


def card_value(header: fits.Header, keyword: str) -> Any:
    """The value of the first ``keyword`` card of ``header`` as astropy would give it, None if
    absent, or FALLBACK where astropy must decide."""
    indices = getattr(header, "_keyword_indices", None)
    cards = getattr(header, "_cards", None)
    if not isinstance(indices, dict) or not isinstance(cards, list):
        return FALLBACK
    found = indices.get(keyword)
    if not found:
        return None if keyword == keyword.upper() and "." not in keyword else FALLBACK
    image = getattr(cards[found[0]], "_image", None)
    if not isinstance(image, str) or len(image) != 80:
        return FALLBACK
    return parse_card_image(image)


def parse_card_image(image: str) -> Any:
    """The value of an 80-character card image, or FALLBACK for the forms astropy must read."""
    if image[8:10] != "= ":
        return FALLBACK
    field = image[10:].lstrip()
    if field.startswith("'"):
        parts, start = [], 1
        while True:
            end = field.find("'", start)
            if end < 0:
                return FALLBACK
            if field[end + 1 : end + 2] == "'":
                parts.append(field[start : end + 1])
                start = end + 2
                continue
            parts.append(field[start:end])
            break
        text = "".join(parts).rstrip()
        return FALLBACK if text.endswith("&") else text  # a CONTINUE'd long string
    value = field.split("/", 1)[0].strip()
    if value == "T":
        return True
    if value == "F":
        return False
    if _INTEGER.match(value):
        return int(value)
    if _REAL.match(value):
        return float(value.replace("D", "E").replace("d", "e"))
    return FALLBACK


def where(hdu: int) -> str:
    """The suffix of a note about an extension's keyword."""
    return f" (extension {hdu})" if hdu else ""
