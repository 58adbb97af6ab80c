"""A frame's calibrations as the API gives them: from the cache when it is fresh, computed on
the spot otherwise (never stored from here: the web application only reads)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from fits_storage.cal.associate import Found, associate, found_by_id
from fits_storage.cal.cache import cached
from fits_storage.cal.instruments import applicable

CACHE = "cache"
COMPUTED = "computed"


@dataclass(frozen=True)
class Answer:
    calibrations: dict[str, list[Found]]  # by type, best first, in the order asked
    source: str  # CACHE or COMPUTED


def answer(session: Session, frame: Found, caltypes: Sequence[str] | None = None) -> Answer:
    """The calibrations of ``caltypes`` (default: the types the frame needs)."""
    needed = applicable(frame.fields)
    wanted = needed if caltypes is None else list(caltypes)
    if set(wanted) <= set(needed):
        stored = cached(session, frame)
        if stored is not None:
            founds = found_by_id(
                session, [hid for rows in stored.values() for _rank, hid in rows]
            )
            return Answer(
                {
                    caltype: [founds[hid] for _rank, hid in stored.get(caltype, [])]
                    for caltype in wanted
                },
                CACHE,
            )
    return Answer(
        {caltype: associate(session, frame.fields, caltype) for caltype in wanted}, COMPUTED
    )
