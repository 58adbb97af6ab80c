"""Cards that astropy's verification would pass, recognised without asking it.

``HDUList.verify`` calls ``Card._verify`` on every card, and that costs about 25 µs a card in
Python (the keyword parsed again, the card split, three regular expressions, an error list
built): half of the verification report of a file with a few hundred cards, and more than
astropy's whole ``fits.open`` of it. Almost every card of a real file is plain: an upper-case
keyword, ``= `` in columns 9-10 and a value astropy's own standard-conformance expression
accepts, or a commentary card of printable text. For such a card ``Card._verify`` finds
nothing, so :func:`skip_plain_cards` gives it a verification that returns the empty result
at once. Every other card (lower case, HIERARCH, CONTINUE, long strings, a bad value, a
control byte) keeps astropy's own check, so the report is the same text astropy gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from astropy.io.fits import Card, Header
from astropy.io.fits.verify import _ErrList

# The 80 columns are printable ASCII, and either a commentary keyword (blank, COMMENT,
# HISTORY: astropy checks only that the text is printable) or a standard keyword padded to
# 8 columns followed by the value indicator "= " and a value and comment that the expression
# ``Card._verify`` applies (astropy's standard-conformance expression, ``Card._value_FSC_RE``)
# accepts. That expression is matched in the same call, on the 70 columns as they stand: its
# leading blanks, its blanks before a comment and the comment's own text take up what
# ``Card._verify`` strips first, so the two agree (tested against astropy's own verification).
# It reads astropy's private card attributes; if a release renames them, every card is left to
# astropy, which is slower but gives the same report.
_VALUE = getattr(Card, "_value_FSC_RE", None)
_PLAIN = (
    re.compile(
        r"(?:COMMENT |HISTORY | {8})[ -~]{72}"
        r"|(?!CONTINUE|HIERARCH)(?=[A-Z0-9_-]{1,8} *=)[A-Z0-9_ -]{8}= (?=[ -~]{70}\Z)"
        f"(?:{_VALUE.pattern})"
    )
    if _VALUE is not None
    else None
)


class _NoErrors(_ErrList):
    """The empty result of a plain card's verification: the report walks every card's result,
    and an empty one has no lines to give (one call, not a generator over an empty list)."""

    def iter_lines(self, filter: Any = None, shift: int = 0) -> Iterator[Any]:  # noqa: A002
        return iter(())


_NOTHING_FOUND = _NoErrors([])


def _nothing_to_report(option: str = "warn") -> _ErrList:
    return _NOTHING_FOUND


def is_plain(card: Card) -> bool:
    """True when ``Card._verify`` would report nothing for ``card``, as read from a file.

    The card must be one 80-column image (a long string spans several), unchanged since it
    was read (astropy does not re-check a value set in memory either, but then it has no image
    to look at)."""
    image: Any = getattr(card, "_image", None)
    if _PLAIN is None or not isinstance(image, str) or len(image) != Card.length:
        return False
    if getattr(card, "_modified", True):
        return False
    return _PLAIN.fullmatch(image) is not None


def skip_plain_cards(header: Header) -> None:
    """Give each plain card of ``header`` a verification that finds nothing (it is marked
    verified, as astropy marks a card it checked)."""
    for card in header._cards:
        if is_plain(card):
            card._verify = _nothing_to_report
            card._verified = True
