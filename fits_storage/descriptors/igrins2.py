"""IGRINS-2: the immersion-grating near-infrared echelle (H and K bands at once, one file per
band), one unbinned array per band, Fowler sampling.

Semantics of DRAGONS' ``igrins_instruments``: the time from UTDATETI or UTSTART (full ISO
date-times), the band in FILTER (``H``/``K``, also the wavelength band), sky frames (OBJECT
containing "sky") are the arcs, GCALLAMP/GCALSHUT say whether a flat's lamp is on; the read
mode is the number of Fowler samples (NSAMP).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from fits_storage.descriptors import parsers
from fits_storage.descriptors.frame import Frame
from fits_storage.descriptors.generic import GENERIC, instrument_tags, ut_datetime
from fits_storage.descriptors.mapping import Constant, Derived, Keywords


def iso_datetime(value: object) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise parsers.Malformed(f"malformed date-time {value!r}") from None
    return parsed.replace(tzinfo=None)


UT_DATETIME = Keywords(("UTDATETI", "UTSTART"), iso_datetime, hdus=(0, 1), optional=True)


def igrins2_ut_datetime(frame: Frame) -> datetime | None:
    """UTDATETI, then UTSTART (date-times here, not times); then the generic DATE-OBS rules."""
    return UT_DATETIME.compute(frame) or ut_datetime(frame)


def read_mode(frame: Frame) -> str | None:
    value = frame.get("NSAMP") or frame.get("NSAMP", 1)
    if value is None:
        frame.missing("NSAMP: missing")
        return None
    try:
        return f"{parsers.integer(value)} Fowler samples"
    except parsers.Malformed as exc:
        frame.note(f"NSAMP: {exc}")
        return None


def igrins2_tags(frame: Frame) -> Iterable[str]:
    yield "IGRINS"
    yield from instrument_tags(frame)
    obstype = frame.upper("OBSTYPE")
    if obstype == "OBJECT" and "SKY" in frame.upper("OBJECT"):
        yield from ("SKY", "ARC", "!STANDARD", "!SCIENCE")
    shutter, lamp = frame.upper("GCALSHUT"), str(frame.get("GCALLAMP") or "")
    if shutter == "CLOSED" and lamp == "QH":
        yield "LAMPON"
    elif shutter == "CLOSED" and lamp == "IRhigh":
        yield "LAMPOFF"
    if obstype != "DARK" and (frame.get("FILTER") or frame.get("FILTER", 1)):
        yield from ("SPECT", "XD")


BAND = Keywords(("FILTER",), hdus=(0, 1), raw_only=True)

IGRINS2 = GENERIC.extend(
    "IGRINS-2",
    ("IGRINS-2",),
    fields={
        "ut_datetime": Derived(igrins2_ut_datetime),
        "filter_name": BAND,
        "coadds": Constant(1),
        "disperser": Constant(None),
        "focal_plane_mask": Constant(None),
        "central_wavelength": Constant(None),
        "detector_binning": Constant("1x1"),
        "wavelength_band": BAND,
        "detector_readmode": Derived(read_mode),
    },
    tags=(igrins2_tags,),
)
