"""astropy's look-ups that give the same answer for every card and HDU, made once per file.

While a file is read (:func:`settled_lookups`):

* the card module sees a snapshot of astropy's configuration, taken when the reading began.
  Every ``Card.value``, ``Card.comment`` and record-valued-keyword check otherwise asks it for
  ``strip_header_whitespace`` or ``enable_record_valued_keyword_cards``, and each question walks
  the configuration's sections and validates the answer: about 3 µs, some 170 times a file.
* reading each HDU looks up the HDU class's ``__init__`` signature (``inspect.signature``) and
  lists every subclass of the HDU base class to find the class matching the header: both are
  remembered, the signature for the process, the subclasses for the file (no HDU class can be
  defined in the middle of one file's reading; a module imported later may define one).
* ``Header.index`` (the position of a keyword, which the verification of a table asks for
  every column keyword) is read from the keyword index astropy keeps, not by a scan.

The values are the ones astropy would give, so another thread reading FITS meanwhile sees the
same answers; a configuration change made meanwhile applies from the next file. If a release
of astropy no longer holds one of these names where this looks for it, that one is left alone.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from astropy.io.fits import Card, Header
from astropy.io.fits import card as _card
from astropy.io.fits.hdu import base as _base


class ConfSnapshot:
    """Each configuration item as astropy gave it on the first question (then kept)."""

    def __init__(self, conf: Any) -> None:
        self._conf = conf

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._conf, name)
        setattr(self, name, value)
        return value


_signature = functools.lru_cache(maxsize=64)(inspect.signature)


def _subclasses_once(original: Callable[..., Iterator[type]]) -> Callable[..., Iterator[type]]:
    """``itersubclasses``, each class's list made once (``_seen`` is only used by the
    function's own recursion)."""
    found: dict[type, tuple[type, ...]] = {}

    def itersubclasses(cls: type, _seen: Any = None) -> Iterator[type]:
        if cls not in found:
            found[cls] = tuple(original(cls))
        return iter(found[cls])

    return itersubclasses


def _index_by_keyword(original: Callable[..., int]) -> Callable[..., int]:
    """``Header.index`` answered from the keyword index astropy keeps for every header (a
    dictionary of keyword -> positions) instead of comparing every card's keyword in turn:
    table checks ask for every column's keywords, quadratic in the column count."""

    def index(self: Header, keyword: str, start: int | None = None, stop: int | None = None) -> int:
        if start is None and stop is None:
            norm = Card.normalize_keyword(keyword)
            found = self._keyword_indices.get(norm)
            if found:
                first = min(found)
                if self._cards[first].keyword.upper() == norm:
                    return first
        return original(self, keyword, start, stop)

    return index


# (module or class, name) -> a function of astropy's own value making the one used meanwhile
_SUBSTITUTES: dict[tuple[ModuleType | type, str], Callable[[Any], Any]] = {
    (_card, "conf"): ConfSnapshot,
    (_base, "signature"): lambda _: _signature,
    (_base, "itersubclasses"): _subclasses_once,
    (Header, "index"): _index_by_keyword,
}


_lock = threading.Lock()
_depth = 0
_saved: dict[tuple[ModuleType | type, str], Any] = {}


@contextmanager
def settled_lookups() -> Iterator[None]:
    """astropy's card, header and HDU code uses the remembered look-ups until the block ends (nested
    and concurrent blocks share them; the first block makes them, the last puts astropy's own
    back)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = {(m, n): getattr(m, n) for m, n in _SUBSTITUTES if hasattr(m, n)}
            for (module, name), original in _saved.items():
                setattr(module, name, _SUBSTITUTES[module, name](original))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for (module, name), value in _saved.items():
                    setattr(module, name, value)
                _saved = {}
