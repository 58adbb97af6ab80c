"""GMOS-N and GMOS-S: CCD mosaics read by several amplifiers, imaging and spectroscopy (long
slit, MOS, IFU, nod-and-shuffle).

Semantics of DRAGONS' ``gemini_instruments/gmos`` and FitsStorage's GMOS table: binning from
the extensions' CCDSUM; the ROI named from the first requested ROI (DETRO1X/XS/Y/YS, binned
sizes) or else from the extensions' DETSEC; read speed from AMPINTEG and the detector type;
gain setting from the raw GAIN of the extensions (GAINSET once prepared); nod count and
pixels (ANODCNT, NODPIX) of nod-and-shuffle frames; the overscan state of prepared ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fits_storage.descriptors import parsers
from fits_storage.descriptors.frame import Frame
from fits_storage.descriptors.generic import GENERIC, central_wavelength, filters, instrument_tags
from fits_storage.descriptors.mapping import Constant, Derived, Keywords

# Standard ROIs in unbinned pixels, 0-based (y1, y2, x1, x2) with exclusive ends, as DRAGONS'
# gmos lookup gives them (several definitions per name: detectors changed, names did not).
ROI_SETTINGS = {
    "Full Frame": ((0, 4608, 0, 6144), (0, 4224, 0, 6144)),
    "CCD2": ((0, 4608, 2048, 4096), (0, 4224, 2048, 4096)),
    "Central Spectrum": ((1792, 2816, 0, 6144), (1791, 2815, 0, 6144), (1624, 2648, 0, 6144)),
    "Central Stamp": ((2154, 2454, 2922, 3222), (1986, 2286, 2922, 3222), (1986, 2294, 2922, 3222)),
}
HAMAMATSU_DETTYPES = ("S10892", "S10892-N")
_SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")
_IFU_MDF = re.compile(r"^g[ns]ifu_slit[rbs]_mdf", re.IGNORECASE)
IFU_MASKS = ("IFU-B", "IFU-B-NS", "IFU-R", "IFU-R-NS", "IFU-2", "IFU-NS-2")


def roi_name(section: tuple[int, int, int, int]) -> str:
    """The standard name of an unbinned (y1, y2, x1, x2) section, or ``Custom``."""
    for name, sections in ROI_SETTINGS.items():
        if section in sections:
            return name
    return "Custom"


def _binning(frame: Frame) -> tuple[int, int] | None:
    value = frame.values.get("detector_binning")
    if not value:
        return None
    x, y = value.split("x")
    return int(x), int(y)


def _requested_roi(frame: Frame) -> tuple[int, int, int, int] | None:
    """The first requested ROI, unbinned: DETRO1X/DETRO1Y (unbinned start) and
    DETRO1XS/DETRO1YS (sizes in binned pixels)."""
    raw = [frame.get(k) for k in ("DETRO1X", "DETRO1XS", "DETRO1Y", "DETRO1YS")]
    if all(v is None for v in raw):
        return None
    try:
        x1, xs, y1, ys = (parsers.integer(v) for v in raw)
    except (parsers.Malformed, TypeError):
        frame.note(f"DETRO1X/DETRO1XS/DETRO1Y/DETRO1YS: incomplete or malformed ({raw!r})")
        return None
    binning = _binning(frame)
    if binning is None:
        frame.missing("DETRO1X/DETRO1XS/DETRO1Y/DETRO1YS: the binning is unknown, ROI left NULL")
        return None
    return (y1 - 1, y1 - 1 + ys * binning[1], x1 - 1, x1 - 1 + xs * binning[0])


def parse_section(value: object) -> tuple[int, int, int, int] | None:
    """``[x1:x2,y1:y2]`` (1-based, inclusive) as (x1, x2, y1, y2); None if malformed."""
    match = _SECTION.match(str(value))
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def _detector_area(frame: Frame) -> tuple[int, int, int, int] | None:
    """The area the extensions' DETSEC cover, unbinned, as a (y1, y2, x1, x2) section."""
    sections = [parse_section(v) for v in frame.extension_values("DETSEC") if v is not None]
    if not sections:
        return None
    if None in sections:
        frame.note("DETSEC: malformed section in an extension")
        return None
    x1 = min(s[0] for s in sections)
    x2 = max(s[1] for s in sections)
    y1 = min(s[2] for s in sections)
    y2 = max(s[3] for s in sections)
    return (y1 - 1, y2, x1 - 1, x2)


def detector_roi_setting(frame: Frame) -> str | None:
    """The standard name of the ROI read out (``Full Frame``, ``Central Spectrum``…), or
    ``Custom``: from the first requested ROI, else from the area the extensions cover."""
    section = _requested_roi(frame) or _detector_area(frame)
    if section is None:
        if frame.get("DETRO1X") is None:
            frame.missing("DETRO1X/DETSEC: missing; ROI left NULL")
        return None
    return roi_name(section)


def read_speed(frame: Frame) -> str | None:
    """``slow`` or ``fast``: the pixel integration time (AMPINTEG, ns) against the detector's
    threshold (Hamamatsu: 8000, EEV/e2v: 2000)."""
    ampinteg = frame.get("AMPINTEG")
    if ampinteg is None:
        frame.missing("AMPINTEG: missing")
        return None
    try:
        integration = parsers.number(ampinteg)
    except parsers.Malformed as exc:
        frame.note(f"AMPINTEG: {exc}")
        return None
    dettype = frame.get("DETTYPE")
    if dettype is None:
        frame.missing("DETTYPE: missing; read speed left NULL")
        return None
    threshold = 8000 if str(dettype) in HAMAMATSU_DETTYPES else 2000
    return "slow" if integration > threshold else "fast"


def _one_setting(settings: list[str | None]) -> str | None:
    """The setting shared by all extensions but at most one (as DRAGONS allows)."""
    for item in settings:
        if item is not None and settings.count(item) >= len(settings) - 1:
            return item
    return None


def gain_setting(frame: Frame) -> str | None:
    """``low`` or ``high``: GAINSET once prepared; else the raw GAIN of the extensions
    (below 3 e-/ADU is the low-gain setting)."""
    gainset = [v for v in frame.extension_values("GAINSET") if v is not None]
    if not gainset and frame.get("GAINSET") is not None:
        gainset = [frame.get("GAINSET")]
    if gainset:
        return _one_setting([str(v).lower() for v in gainset])
    gains = frame.extension_values("GAIN")
    if not any(g is not None for g in gains):
        frame.missing("GAINSET/GAIN: missing (extensions)")
        return None
    settings = []
    for gain in gains:
        if gain is None:
            settings.append(None)
            continue
        try:
            settings.append("low" if parsers.number(gain) < 3.0 else "high")
        except parsers.Malformed as exc:
            frame.note(f"GAIN: {exc} (extensions)")
            settings.append(None)
    return _one_setting(settings)


def amp_read_area(frame: Frame) -> str | None:
    """``'AMPNAME':DETSEC`` of every extension, sorted and joined by ``+`` (FitsStorage's
    ``amp_read_area``): which amplifiers read which part of the detector."""
    areas = []
    for ampname, detsec in zip(
        frame.extension_values("AMPNAME"), frame.extension_values("DETSEC"), strict=True
    ):
        if ampname is not None and detsec is not None:
            areas.append(f"'{ampname}':{detsec}")
    if not areas:
        frame.missing("AMPNAME/DETSEC: missing (extensions)")
        return None
    return "+".join(sorted(areas))


def nod_count(frame: Frame) -> int | None:
    """Nod-and-shuffle only: the integrations in the A position (ANODCNT), as FitsStorage
    stores the first of DRAGONS' (ANODCNT, BNODCNT); DRAGONS needs both, so a missing or
    malformed BNODCNT leaves it NULL too."""
    if not frame.has("NODPIX"):
        return None
    raw = {k: frame.get(k) for k in ("ANODCNT", "BNODCNT")}
    missing = [k for k, v in raw.items() if v is None]
    if missing:
        frame.note(f"{'/'.join(missing)}: missing; nod count left NULL")
        return None
    try:
        counts = [parsers.integer(v) for v in raw.values()]
    except parsers.Malformed as exc:
        frame.note(f"ANODCNT/BNODCNT: {exc}; nod count left NULL")
        return None
    return counts[0]


def nod_pixels(frame: Frame) -> int | None:
    """Nod-and-shuffle only: the rows the charge is shuffled by (NODPIX)."""
    if not frame.has("NODPIX"):
        return None
    value = frame.get("NODPIX")
    try:
        return None if value is None else parsers.integer(value)
    except parsers.Malformed as exc:
        frame.note(f"NODPIX: {exc}")
        return None


def focal_plane_mask(frame: Frame) -> str | None:
    mask = frame.get("MASKNAME")
    if mask is None:
        frame.missing("MASKNAME: missing")
        return None
    return "Imaging" if str(mask) == "None" else str(mask)


def _masktyp(frame: Frame) -> int | None:
    try:
        return parsers.integer(frame.get("MASKTYP"))
    except (parsers.Malformed, TypeError):
        return None


def gmos_tags(frame: Frame) -> Iterable[str]:
    yield "GMOS"
    yield from instrument_tags(frame)
    obstype = frame.upper("OBSTYPE")
    grating = frame.upper("GRATING")
    if obstype == "FLAT":
        yield "GCALFLAT"
    if obstype not in ("BIAS", "DARK"):
        yield "IMAGE" if grating == "MIRROR" else "SPECT"
    if frame.upper("OBJECT") == "TWILIGHT":
        yield "FLAT" if grating == "MIRROR" else "SLITILLUM"
    if frame.has("NODPIX"):
        yield "NODANDSHUFFLE"
    if obstype in ("BIAS", "BPM"):
        return
    masktyp, maskname = _masktyp(frame), str(frame.get("MASKNAME") or "")
    if masktyp == -1 and (maskname in IFU_MASKS or _IFU_MDF.match(maskname)):
        yield "IFU"
    elif masktyp == 1 and maskname.endswith("arcsec"):
        yield "LS"
    elif masktyp == 1 and not maskname.startswith(("IFU", "focus")):
        yield "MOS"


GMOS = GENERIC.extend(
    "GMOS",
    ("GMOS-N", "GMOS-S"),
    fields={
        "filter_name": filters("FILTER1", "FILTER2"),
        "disperser": Keywords(("GRATING",)),
        "central_wavelength": central_wavelength(("CENTWAVE", 1e-3), ("GRWLEN", 1e-3)),
        "detector_binning": Keywords(("CCDSUM",), parsers.binning, hdus=(1, 0)),
        "coadds": Constant(1),
        "focal_plane_mask": Derived(focal_plane_mask),
        "detector_roi_setting": Derived(detector_roi_setting),
        "detector_readmode": Derived(read_speed),
        "detector_gain_setting": Derived(gain_setting),
        "amp_read_area": Derived(amp_read_area),
        "nod_and_shuffle": Derived(lambda frame: frame.has("NODPIX")),
        "nod_count": Derived(nod_count),
        "nod_pixels": Derived(nod_pixels),
        # DRAGONS' OVERSCAN_TRIMMED / OVERSCAN_SUBTRACTED: a keyword containing the stamp
        "overscan_trimmed": Derived(lambda frame: frame.keyword_contains("TRIMOVER")),
        "overscan_subtracted": Derived(lambda frame: frame.keyword_contains("SUBOVER")),
        "raw_iq": Keywords(("RAWIQ",), parsers.percentile, raw_only=True),
        "raw_cc": Keywords(("RAWCC",), parsers.percentile, raw_only=True),
        "raw_wv": Keywords(("RAWWV",), parsers.percentile, raw_only=True),
        "raw_bg": Keywords(("RAWBG",), parsers.percentile, raw_only=True),
        "local_time": Keywords(("LT",), parsers.clock_time, raw_only=True),
    },
    tags=(gmos_tags,),
)
