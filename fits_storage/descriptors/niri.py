"""NIRI: near-infrared imager with grisms in the third filter wheel, one 1024x1024 array
(read out whole or as a central sub-array), Altair AO.

Semantics of DRAGONS' ``gemini_instruments/niri``: read mode from LNRS and NDAVGS, well depth
from the bias voltage A_VDDUC - A_VDET, the grism in FILTER3, the central wavelength from
the mask and grism (the lookup table below, Angstrom).
"""

from __future__ import annotations

from collections.abc import Iterable

from fits_storage.descriptors import parsers
from fits_storage.descriptors.frame import Frame
from fits_storage.descriptors.generic import (
    GENERIC,
    coadds_or_one,
    exposure_with_coadds,
    instrument_tags,
    lookup,
    strip_component_id,
)
from fits_storage.descriptors.mapping import Constant, Derived, Keywords

READ_MODES = {
    (16, 16): "Low Background",
    (1, 16): "Medium Background",
    (1, 1): "High Background",
}
SHALLOW_BIAS, DEEP_BIAS = -0.6, -0.87  # volts, A_VDDUC - A_VDET
# (focal-plane mask, grism) -> central wavelength in Angstrom (DRAGONS' spec_wavelengths)
SPEC_WAVELENGTHS = {
    **{
        (m, g): w
        for m in (
            "f6-2pix_G5211",
            "f6-4pix_G5212",
            "f6-4pix_G5222",
            "f6-6pix_G5213",
            "f6-6pix_G5223",
        )
        for g, w in (
            ("Jgrism", 12330.0),
            ("Hgrism", 16950.0),
            ("Kgrism", 22630.0),
            ("Lgrism", 35740.0),
            ("Mgrism", 51400.0),
        )
    },
    **{
        (m, g): w
        for m in ("f6-2pixBl_G5214", "f6-4pixBl_G5215", "f6-6pixBl_G5216")
        for g, w in (
            ("Jgrism", 11840.0),
            ("Hgrism", 16250.0),
            ("Kgrism", 21670.0),
            ("Lgrism", 34350.0),
            ("Mgrism", 49400.0),
        )
    },
    **{
        (m, g): w
        for m in ("f32-6pix_G5229", "f32-9pix_G5230")
        for g, w in (("Jgrism", 12030.0), ("Hgrism", 16412.0), ("Kgrism", 21840.0))
    },
}
_NOT_FILTERS = ("open", "grism", "pupil")


def filter_name(frame: Frame) -> str | None:
    """FILTER1..3 without open positions, grisms and pupil masks, sorted, ``&``-joined;
    ``blank`` if a blank is in the beam, ``open`` if nothing is."""
    present = [frame.get(k) for k in ("FILTER1", "FILTER2", "FILTER3")]
    if all(v is None for v in present):
        frame.note("FILTER1/FILTER2/FILTER3: missing")
        return None
    names = sorted(
        str(v)
        for v in present
        if v is not None and not any(x in str(v).lower() for x in _NOT_FILTERS)
    )
    if any(strip_component_id(n) == "blank" for n in names):
        return "blank"
    return "&".join(names) if names else "open"


def disperser(frame: Frame) -> str | None:
    filter3 = frame.get("FILTER3")
    if filter3 is None:
        frame.missing("FILTER3: missing; disperser left NULL")
        return None
    return str(filter3) if "grism" in str(filter3) else "MIRROR"


def central_wavelength(frame: Frame) -> float | None:
    grism = frame.values.get("disperser")
    if not grism or grism == "MIRROR":
        return None
    mask = frame.values.get("focal_plane_mask")
    key = (str(mask), strip_component_id(grism)[:6])
    if key not in SPEC_WAVELENGTHS:
        frame.note(f"FPMASK/FILTER3: no central wavelength known for {key!r}")
        return None
    return SPEC_WAVELENGTHS[key] * 1e-4


def well_depth(frame: Frame) -> str | None:
    vdduc, vdet = frame.get("A_VDDUC"), frame.get("A_VDET")
    if vdduc is None or vdet is None:
        frame.missing("A_VDDUC/A_VDET: missing")
        return None
    try:
        bias = parsers.number(vdduc) - parsers.number(vdet)
    except parsers.Malformed as exc:
        frame.note(f"A_VDDUC/A_VDET: {exc}")
        return None
    if abs(bias - SHALLOW_BIAS) < 0.05:
        return "Shallow"
    if abs(bias - DEEP_BIAS) < 0.05:
        return "Deep"
    frame.note(f"A_VDDUC/A_VDET: bias {bias:.3f} V is neither the shallow nor the deep well")
    return None


def roi_setting(frame: Frame) -> str | None:
    """``Full Frame`` (1024 square), ``Central512``/``Central256`` or ``Custom``, from the size
    of the array read (DRAGONS reads it from the data section, which is the whole array)."""
    hdu = 1 if frame.extension_count else 0
    try:
        nx, ny = (parsers.integer(frame.get(k, hdu)) for k in ("NAXIS1", "NAXIS2"))
    except (parsers.Malformed, TypeError):
        return None
    if nx == ny and nx % 256 == 0 and nx:
        return "Full Frame" if nx == 1024 else f"Central{nx}"
    return "Custom"


def niri_tags(frame: Frame) -> Iterable[str]:
    yield from instrument_tags(frame)
    if frame.upper("OBSTYPE") == "DARK":
        return
    if "grism" in str(frame.get("FILTER3") or ""):
        yield from ("SPECT", "LS")
    else:
        yield "IMAGE"
        if frame.upper("OBJECT") == "TWILIGHT":
            yield "FLAT"


NIRI = GENERIC.extend(
    "NIRI",
    ("NIRI",),
    fields={
        "coadds": Derived(coadds_or_one),
        "exposure_time": Derived(exposure_with_coadds),
        "filter_name": Derived(filter_name),
        "disperser": Derived(disperser),
        "focal_plane_mask": Keywords(("FPMASK",), raw_only=True),
        "central_wavelength": Derived(central_wavelength),
        "detector_binning": Constant("1x1"),
        "detector_roi_setting": Derived(roi_setting),
        "detector_readmode": lookup(("LNRS", "NDAVGS"), READ_MODES, "NIRI read mode"),
        "detector_welldepth": Derived(well_depth),
    },
    tags=(niri_tags,),
)
