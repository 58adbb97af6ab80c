"""The descriptor layer: the standard fields of a frame computed from its raw keywords.

Per instrument, a declarative mapping (``generic.GENERIC`` extended by one module per
instrument, listed in ``registry.MAPPINGS``) says which keywords each ``header`` column comes
from, in order of trust, and how each is parsed. :func:`describe` applies the mapping of the
frame's INSTRUME; a missing or malformed keyword leaves its field NULL with a note.
docs/descriptors.md describes the fields and how to add an instrument.
"""

from __future__ import annotations

from collections.abc import Sequence

from astropy.io import fits

from fits_storage.descriptors.frame import Frame
from fits_storage.descriptors.mapping import Description, InstrumentMapping, apply
from fits_storage.descriptors.registry import MAPPINGS, mapping_for

__all__ = ["MAPPINGS", "Description", "InstrumentMapping", "describe", "mapping_for"]


def describe(headers: Sequence[fits.Header], filename: str | None = None) -> Description:
    """Every field of the frame whose headers (primary first) are ``headers``.

    ``filename``: the name the file is stored under, a last resort for the site.
    """
    result = Description()
    if not headers:
        result.notes.append("no HDUs")
        return result
    frame = Frame(headers, result.notes, filename)
    instrument = frame.get("INSTRUME") or frame.get("INSTRUME", 1)
    result.values = apply(mapping_for(instrument), frame)
    return result
