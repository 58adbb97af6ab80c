"""Which mapping serves which instrument: one line per instrument module.

Adding an instrument is adding its module (a mapping built from ``GENERIC``) and a line to
:data:`MAPPINGS`; the ingest never changes.
"""

from __future__ import annotations

from fits_storage.descriptors import f2, ghost, gmos, gnirs, gsaoi, igrins2, niri
from fits_storage.descriptors.generic import GENERIC
from fits_storage.descriptors.mapping import InstrumentMapping

MAPPINGS: tuple[InstrumentMapping, ...] = (
    gmos.GMOS,
    gnirs.GNIRS,
    niri.NIRI,
    f2.F2,
    gsaoi.GSAOI,
    ghost.GHOST,
    igrins2.IGRINS2,
)

_BY_INSTRUMENT = {name: mapping for mapping in MAPPINGS for name in mapping.instruments}


def mapping_for(instrument: str | None) -> InstrumentMapping:
    """The mapping of INSTRUME ``instrument`` (any case); the generic default otherwise."""
    if not instrument:
        return GENERIC
    return _BY_INSTRUMENT.get(str(instrument).strip().upper(), GENERIC)
