"""FLAMINGOS-2 (F2): near-infrared imaging and spectroscopy (long slit, MOS) on one unbinned
array; INSTRUME ``F2`` (``FLAM`` on early data).

Semantics of DRAGONS' ``gemini_instruments/f2``: read mode is the number of reads (LNRS), the
disperser the GRISM (``Open`` when imaging), the focal-plane mask MOSPOS, the central
wavelength GRWLEN (micrometres; 2.2 with the K-long filter); filters FILTER1/FILTER2, or
FILT1POS/FILT2POS on data older than March 2010.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fits_storage.descriptors import parsers
from fits_storage.descriptors.frame import Frame
from fits_storage.descriptors.generic import (
    GENERIC,
    OPEN_FILTER,
    coadds_or_one,
    exposure_with_coadds,
    instrument_tags,
)
from fits_storage.descriptors.mapping import Constant, Derived, Keywords

_SPECT_GRISM = re.compile(r"^(JH|HK|R3K)")
_DARK_FILTER = re.compile(r"^DK")


def filter_name(frame: Frame) -> str | None:
    """FILTER1&FILTER2 without open positions; the pre-2010 FILT1POS/FILT2POS if neither
    is present."""
    for pair in (("FILTER1", "FILTER2"), ("FILT1POS", "FILT2POS")):
        present = [str(v) for v in (frame.get(k) for k in pair) if v is not None]
        if present:
            real = [v for v in present if not OPEN_FILTER.match(v)]
            return "&".join(real) if real else "open"
    frame.note("FILTER1/FILTER2/FILT1POS/FILT2POS: missing")
    return None


def central_wavelength(frame: Frame) -> float | None:
    disperser = frame.values.get("disperser")
    if disperser is None or str(disperser).lower().startswith("open"):
        return None
    if str(frame.get("FILTER1") or "").startswith("K-long"):
        return 2.2
    return Keywords(("GRWLEN",), _wavelength).compute(frame)


def _wavelength(value: object) -> float | None:
    number = parsers.number(value)
    if number <= 0:
        raise parsers.Malformed(f"{value!r} is not a wavelength")
    return number


def f2_tags(frame: Frame) -> Iterable[str]:
    yield from instrument_tags(frame)
    filters = [str(frame.get(k) or "") for k in ("FILTER1", "FILTER2")]
    if frame.upper("OBSTYPE") == "DARK" or any(_DARK_FILTER.match(f) for f in filters):
        yield from ("DARK", "CAL")
        return
    grism = str(frame.get("GRISM") or frame.get("GRISMPOS") or "")
    if grism == "Open":
        yield "IMAGE"
    elif _SPECT_GRISM.match(grism):
        yield "SPECT"
        decker = str(frame.get("DECKER") or frame.get("DCKERPOS") or "")
        mospos = str(frame.get("MOSPOS") or "")
        if decker == "Long_slit" or re.match(r"^.?pix-slit", mospos):
            yield "LS"
        elif decker == "mos" or mospos.startswith("mos"):
            yield "MOS"


F2 = GENERIC.extend(
    "F2",
    ("F2", "FLAM"),
    fields={
        "coadds": Derived(coadds_or_one),
        "exposure_time": Derived(exposure_with_coadds),
        "filter_name": Derived(filter_name),
        "disperser": Keywords(("GRISM", "GRISMPOS"), raw_only=True),
        "focal_plane_mask": Keywords(("MOSPOS",), raw_only=True),
        "central_wavelength": Derived(central_wavelength),
        "detector_binning": Constant("1x1"),
        "detector_readmode": Derived(
            lambda frame: None if frame.get("LNRS") is None else str(frame.get("LNRS"))
        ),
    },
    tags=(f2_tags,),
)
