"""GNIRS: near-infrared imaging (acquisition mirror in) and spectroscopy (long slit,
cross-dispersed, IFU), one unbinned array read with coadds.

Semantics of DRAGONS' ``gemini_instruments/gnirs``: read mode from LNRS and NDAVGS, well depth
from the detector bias DETBIAS, the disperser as grating&prism, the focal-plane mask as
slit&decker, the central wavelength GRATWAVE (micrometres).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fits_storage.descriptors import parsers
from fits_storage.descriptors.frame import Frame
from fits_storage.descriptors.generic import (
    GENERIC,
    central_wavelength,
    coadds_or_one,
    exposure_with_coadds,
    filters,
    instrument_tags,
    lookup,
)
from fits_storage.descriptors.mapping import Constant, Derived

READ_MODES = {
    (32, 16): "Very Faint Objects",
    (16, 16): "Faint Objects",
    (1, 16): "Bright Objects",
    (1, 1): "Very Bright Objects",
}
_GRATING = re.compile(r"([\d/m]+)[A-Z]*(_G)(\d+)")
_PRISM = re.compile(r"(?:[A-Z0-9]*\+)?([A-Z]*_G\d+)")


def disperser(frame: Frame) -> str | None:
    """``MIRROR`` with the acquisition mirror in; else grating (and prism unless it is the
    mirror position): ``32/mm_G5533&SXD_G5536``."""
    if frame.upper("ACQMIR") == "IN":
        return "MIRROR"
    grating, prism = frame.get("GRATING"), frame.get("PRISM")
    if grating is None or prism is None:
        frame.missing("GRATING/PRISM: missing")
        return None
    match = _GRATING.match(str(grating))
    grating = "".join(match.groups()) if match else str(grating)
    match = _PRISM.match(str(prism))
    if not match:
        frame.note(f"PRISM: unrecognised prism {prism!r}")
        return None
    prism = match[1]
    return grating if prism.startswith("MIR") else f"{grating}&{prism}"


def focal_plane_mask(frame: Frame) -> str | None:
    """``slit&decker`` (``0.30arcsec_G5530&SCXD_G5531``); the slit alone without DECKER."""
    slit = frame.get("SLIT")
    if slit is None:
        frame.missing("SLIT: missing")
        return None
    slit = str(slit).replace(" ", "").replace("Acquisition", "Acq")
    decker = frame.get("DECKER")
    if decker is None:
        frame.missing("DECKER: missing; focal-plane mask is the slit alone")
        return slit
    return f"{slit}&{str(decker).replace(' ', '').replace('Acquisition', 'Acq')}"


def well_depth(frame: Frame) -> str | None:
    """``Shallow`` (|DETBIAS| near 0.3 V) or ``Deep`` (near 0.6 V)."""
    value = frame.get("DETBIAS")
    if value is None:
        frame.missing("DETBIAS: missing")
        return None
    try:
        bias = abs(parsers.number(value))
    except parsers.Malformed as exc:
        frame.note(f"DETBIAS: {exc}")
        return None
    if abs(0.3 - bias) < 0.1:
        return "Shallow"
    if abs(0.6 - bias) < 0.1:
        return "Deep"
    frame.note(f"DETBIAS: {value!r} V is neither the shallow nor the deep well bias")
    return None


def gnirs_tags(frame: Frame) -> Iterable[str]:
    yield from instrument_tags(frame)
    obstype = frame.upper("OBSTYPE")
    slit = str(frame.get("SLIT") or "")
    if obstype == "FLAT" and "Pinholes" in slit:
        yield from ("PINHOLE", "CAL", "!FLAT")
    if obstype == "DARK":
        return
    acqmir = frame.upper("ACQMIR")
    if acqmir == "IN":
        yield "IMAGE"
    elif acqmir == "OUT":
        yield "SPECT"
        grating, prism = str(frame.get("GRATING") or ""), str(frame.get("PRISM") or "")
        if "ifu" in slit.lower():
            yield "IFU"
        elif ("arcsec" in slit or "pin" in slit) and "mm" in grating:
            if "MIR" in prism:
                yield "LS"
            elif "XD" in prism:
                yield "XD"


GNIRS = GENERIC.extend(
    "GNIRS",
    ("GNIRS",),
    fields={
        "coadds": Derived(coadds_or_one),
        "exposure_time": Derived(exposure_with_coadds),
        "filter_name": filters("FILTER1", "FILTER2"),
        "disperser": Derived(disperser),
        "central_wavelength": central_wavelength(("GRATWAVE", 1.0)),
        "detector_binning": Constant("1x1"),
        "focal_plane_mask": Derived(focal_plane_mask),
        "detector_readmode": lookup(("LNRS", "NDAVGS"), READ_MODES, "GNIRS read mode"),
        "detector_welldepth": Derived(well_depth),
    },
    tags=(gnirs_tags,),
)
