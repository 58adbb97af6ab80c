"""astropy's FITS configuration read once per file, not once per card.

Every ``Card.value``, ``Card.comment`` and record-valued-keyword check asks astropy's
configuration for ``strip_header_whitespace`` or ``enable_record_valued_keyword_cards``, and
each question walks astropy's configuration files' sections and validates the answer: about
3 µs, some 170 times a file, half a millisecond of a small file's ingest. While a file is read
(:func:`settled_card_conf`) the card module sees a snapshot of the configuration taken when the
reading began, with the same values: a change made meanwhile by another thread applies to the
next file. If a release of astropy no longer holds the configuration where this looks for it,
nothing is replaced and astropy answers as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from astropy.io.fits import card as _card


class ConfSnapshot:
    """Each configuration item as astropy gave it on the first question (then kept)."""

    def __init__(self, conf: Any) -> None:
        self._conf = conf

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._conf, name)
        setattr(self, name, value)
        return value


_lock = threading.Lock()
_depth = 0
_saved: Any = None


@contextmanager
def settled_card_conf() -> Iterator[None]:
    """The card module reads a snapshot of astropy's configuration until the block ends
    (nested and concurrent blocks share one snapshot, taken by the first)."""
    global _depth, _saved
    if not hasattr(_card, "conf"):
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = _card.conf
            _card.conf = ConfSnapshot(_saved)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _card.conf, _saved = _saved, None
