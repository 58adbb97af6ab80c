"""GSAOI: the near-infrared imager behind GeMS (always adaptive optics), four unbinned
arrays.

Semantics of DRAGONS' ``gemini_instruments/gsaoi``: read mode from the number of reads
(LNRS: 2 Bright, 8 Faint, 16 Very Faint Objects); imaging only; dome flats named in OBJECT.
"""

from __future__ import annotations

from collections.abc import Iterable

from fits_storage.descriptors.frame import Frame
from fits_storage.descriptors.generic import (
    GENERIC,
    coadds_or_one,
    exposure_with_coadds,
    filters,
    instrument_tags,
    lookup,
)
from fits_storage.descriptors.mapping import Constant, Derived

READ_MODES = {2: "Bright Objects", 8: "Faint Objects", 16: "Very Faint Objects"}


def gsaoi_tags(frame: Frame) -> Iterable[str]:
    yield from instrument_tags(frame)
    if frame.upper("OBSTYPE") == "DARK":
        return
    yield "IMAGE"
    obj = frame.upper("OBJECT")
    if "DOMEFLAT" in obj:
        yield from ("DOMEFLAT", "FLAT")
        yield "LAMPOFF" if obj == "DOMEFLAT OFF" else "LAMPON"
    elif "TWILIGHT" in obj:
        yield from ("TWILIGHT", "FLAT")


GSAOI = GENERIC.extend(
    "GSAOI",
    ("GSAOI",),
    fields={
        "coadds": Derived(coadds_or_one),
        "exposure_time": Derived(exposure_with_coadds),
        "filter_name": filters("FILTER1", "FILTER2"),
        "disperser": Constant(None),
        "central_wavelength": Constant(None),
        "detector_binning": Constant("1x1"),
        "detector_readmode": lookup(("LNRS",), READ_MODES, "GSAOI read mode"),
        "adaptive_optics": Constant(True),
    },
    tags=(gsaoi_tags,),
)
