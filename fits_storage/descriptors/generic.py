"""The generic default mapping: the observatory's common keywords, and the rules every
instrument shares (dates, site, sky conditions, QA, program flags, reduction state, tags).

Instrument modules start from :data:`GENERIC` and replace what their instrument does
differently. Semantics follow the observatory's descriptor library (DRAGONS'
``gemini_instruments``) and the archive it feeds (FitsStorage); docs/descriptors.md lists them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from fits_storage.descriptors import parsers
from fits_storage.descriptors.frame import Frame, where
from fits_storage.descriptors.mapping import Constant, Derived, InstrumentMapping, Keywords

OPEN_FILTER = re.compile(r"^(open|empty|clear|none)", re.IGNORECASE)
_COMPONENT_ID = re.compile(r"_G\d{4}$")
_FILENAME_SITE = re.compile(r"^([NS])(\d{8})S\d{4}")
SITES = {
    "GEMINI-NORTH": "Gemini-North",
    "GEMINI NORTH": "Gemini-North",
    "GEMINI-SOUTH": "Gemini-South",
    "GEMINI SOUTH": "Gemini-South",
}
# Processing keywords the reduction software writes, and the kind of product each marks.
PROCESSED_KEYWORDS = {
    "PROCBIAS": "BIAS",
    "GBIAS": "BIAS",
    "PROCDARK": "DARK",
    "PROCFLAT": "FLAT",
    "GIFLAG": "FLAT",
    "PROCARC": "ARC",
    "PROCFRNG": "FRINGE",
    "GIFRINGE": "FRINGE",
    "PROCSTND": "STANDARD",
    "SENSFUNC": "STANDARD",
    "PROCILLM": "SLITILLUM",
    "PROCBPM": "BPM",
    "PROCSCI": "SCIENCE",
}
# The order in which a processed product's kind is named (a processed flat is also PREPARED).
REDUCTION_KINDS = (
    "BIAS",
    "DARK",
    "FLAT",
    "ARC",
    "FRINGE",
    "STANDARD",
    "SLITILLUM",
    "BPM",
)
CAL_TAGS = frozenset({"BIAS", "DARK", "FLAT", "ARC", "TWILIGHT", "STANDARD", "FRINGE", "BPM"})
CAL_CLASSES = frozenset({"partnercal", "progcal", "daycal", "acqcal"})
# Effective wavelength (micrometres) of each band, as DRAGONS' lookup gives them; a frame's
# band is the one nearest its central wavelength (spectra) or its filter's (images).
BANDS = {
    "u": 0.350,
    "g": 0.475,
    "r": 0.630,
    "i": 0.780,
    "Z": 0.900,
    "Y": 1.020,
    "X": 1.100,
    "J": 1.200,
    "H": 1.650,
    "K": 2.200,
    "L": 3.400,
    "M": 4.800,
    "N": 11.700,
    "Q": 18.000,
}
FILTER_WAVELENGTHS = {
    "u": 0.350,
    "g": 0.475,
    "r": 0.630,
    "i": 0.780,
    "z": 0.925,
    "Z": 0.876,
    "Y": 1.010,
    "J": 1.250,
    "Jcont": 1.207,
    "H": 1.650,
    "K": 2.200,
    "Ks": 2.150,
    "Kshort": 2.150,
    "Kprime": 2.120,
    "Kp": 2.120,
    "Klong": 2.200,
    "L": 3.400,
    "Lprime": 3.780,
    "Lp": 3.780,
    "M": 4.800,
    "Mprime": 4.680,
    "Ha": 0.656,
    "HaC": 0.662,
    "OIII": 0.499,
    "OIIIC": 0.514,
    "SII": 0.672,
    "HeII": 0.468,
    "CaT": 0.860,
    "BrG": 2.166,
    "H2": 2.122,
    "FeII": 1.644,
}


def strip_component_id(name: str) -> str:
    """``"r_G0303"`` -> ``"r"``: the observatory's component ids dropped."""
    return _COMPONENT_ID.sub("", name)


# -- the program and QA -------------------------------------------------------------------


def qa_state(rawgemqa: str | None, rawpireq: str | None) -> str | None:
    """The observatory's QA state from RAWGEMQA and RAWPIREQ, as the archive has shown it."""
    if rawgemqa is None and rawpireq is None:
        return None
    gemqa = (rawgemqa or "UNKNOWN").upper()
    pireq = (rawpireq or "UNKNOWN").upper()
    if gemqa == "BAD":
        return "Fail"
    if gemqa == "CHECK" or pireq == "CHECK":
        return "CHECK"
    if gemqa == "USABLE" and pireq == "YES":
        return "Pass"
    if gemqa == "USABLE" and pireq == "NO":
        return "Usable"
    return "Undefined"


def program_flags(program_id: str | None) -> dict[str, bool | None]:
    """Engineering / science-verification / calibration, from the program id's form."""
    if program_id is None:
        return {"engineering": None, "science_verification": None, "calibration_program": None}
    upper = program_id.upper()
    return {
        "engineering": "-ENG" in upper,
        "science_verification": "-SV-" in upper or upper.endswith("-SV"),
        "calibration_program": "-CAL" in upper,
    }


def _qa_state(frame: Frame) -> str | None:
    gemqa, pireq = frame.get("RAWGEMQA"), frame.get("RAWPIREQ")
    state = qa_state(None if gemqa is None else str(gemqa), None if pireq is None else str(pireq))
    if state is None:
        frame.note("RAWGEMQA/RAWPIREQ: missing")
    return state


def _program_flag(name: str) -> Derived:
    return Derived(lambda frame: program_flags(frame.values.get("program_id"))[name])


# -- time and place -------------------------------------------------------------------------

UT_TIME_KEYWORDS = ("TIME-OBS", "UT", "UTSTART")


def ut_datetime(frame: Frame, hdu: int = 0) -> datetime | None:
    """DATE-OBS (with its own time if it has one) plus TIME-OBS, UT or UTSTART, in that order
    of trust; MJD-OBS when DATE-OBS or every time keyword is missing or malformed."""
    day = None
    suffix = where(hdu)
    date_text = frame.get("DATE-OBS", hdu)
    if date_text is not None:
        try:
            day, clock = parsers.date_and_time(date_text)
        except parsers.Malformed as exc:
            frame.note(f"DATE-OBS: {exc}{suffix}")
        else:
            if clock is not None:
                return datetime.combine(day, clock)
    if day is not None:
        for keyword in UT_TIME_KEYWORDS:
            value = frame.get(keyword, hdu)
            if value is None:
                continue
            try:
                return datetime.combine(day, parsers.clock_time(value))
            except parsers.Malformed as exc:
                frame.note(f"{keyword}: {exc}{suffix}")
    mjd = frame.get("MJD-OBS", hdu)
    if mjd is not None:
        try:
            return parsers.mjd_datetime(mjd)
        except parsers.Malformed as exc:
            frame.note(f"MJD-OBS: {exc}{suffix}")
    if date_text is None and mjd is None:
        frame.note(f"DATE-OBS: missing{suffix}")
    elif day is not None:
        frame.note(f"TIME-OBS/UT/UTSTART/MJD-OBS: missing; UT date-time left NULL{suffix}")
    return None


def site(frame: Frame) -> str | None:
    """Gemini-North / Gemini-South from OBSERVAT or TELESCOP; else the site letter of the
    observatory file name (ORIGNAME, or the name the file is stored under)."""
    for keyword in ("OBSERVAT", "TELESCOP"):
        value = frame.get(keyword)
        if value is not None and str(value).upper() in SITES:
            return SITES[str(value).upper()]
    for name in (frame.get("ORIGNAME"), frame.filename):
        match = _FILENAME_SITE.match(str(name)) if name else None
        if match:
            return "Gemini-North" if match[1] == "N" else "Gemini-South"
    if frame.mapping is not None and frame.mapping.gemini:
        frame.note("OBSERVAT/TELESCOP/ORIGNAME: no Gemini site")
    return None


def telescope_keyword(keyword: str, parse: Any) -> Derived:
    """A keyword the telescope control system writes into every Gemini frame (ELEVATIO,
    CRPA): malformed is noted; missing is noted on raw frames of Gemini instruments only
    (another file need not know where a telescope pointed)."""
    read = Keywords((keyword,), parse, optional=True)

    def compute(frame: Frame) -> Any:
        value = read.compute(frame)
        gemini = frame.mapping is not None and frame.mapping.gemini
        if value is None and gemini and frame.get(keyword) is None:
            frame.missing(f"{keyword}: missing")
        return value

    return Derived(compute)


def right_ascension(frame: Frame) -> float | None:
    return _coordinate(frame, "RA", 1, parsers.right_ascension)


def declination(frame: Frame) -> float | None:
    return _coordinate(frame, "DEC", 2, parsers.declination)


def _coordinate(frame: Frame, keyword: str, axis: int, parse: Any) -> float | None:
    """The RA/DEC keyword; else the WCS reference value of the first extension (or the
    primary) whose CTYPE is celestial."""
    value = frame.get(keyword)
    if value is not None:
        try:
            return parse(value)
        except parsers.Malformed as exc:
            frame.note(f"{keyword}: {exc}")
            return None
    prefix = "RA--" if axis == 1 else "DEC-"
    for hdu in (1, 0) if frame.extension_count else (0,):
        ctype = frame.get(f"CTYPE{axis}", hdu)
        crval = frame.get(f"CRVAL{axis}", hdu)
        if ctype is not None and crval is not None and str(ctype).upper().startswith(prefix):
            try:
                return parse(crval)
            except parsers.Malformed as exc:
                frame.note(f"CRVAL{axis}: {exc}")
                return None
    frame.note(f"{keyword}: missing")
    return None


# -- the optical configuration --------------------------------------------------------------


def filters(*keywords: str) -> Derived:
    """The filters in the beam joined by ``&`` in keyword order; open positions dropped;
    ``open`` if nothing else."""

    def compute(frame: Frame) -> str | None:
        present = []
        for keyword in keywords:
            value = frame.get(keyword)
            if value is not None and not isinstance(value, bool):
                present.append(str(value))
        if not present:
            frame.note(f"{'/'.join(keywords)}: missing")
            return None
        real = [v for v in present if not OPEN_FILTER.match(v)]
        return "&".join(real) if real else "open"

    return Derived(compute)


def central_wavelength(*keywords: tuple[str, float]) -> Derived:
    """Micrometres, from ``(keyword, factor to micrometres)`` in order of trust; only with a
    disperser in the beam (a mirror or an open position disperses nothing)."""

    def compute(frame: Frame) -> float | None:
        disperser = frame.values.get("disperser")
        if disperser is None or str(disperser).lower().startswith(("mirror", "open")):
            return None
        for keyword, factor in keywords:
            value = frame.get(keyword)
            if value is None:
                continue
            try:
                wavelength = parsers.number(value)
            except parsers.Malformed as exc:
                frame.note(f"{keyword}: {exc}")
                continue
            if wavelength <= 0:
                frame.note(f"{keyword}: {value!r} is not a wavelength")
                continue
            return wavelength * factor
        frame.note(f"{'/'.join(k for k, _ in keywords)}: missing")
        return None

    return Derived(compute)


def filter_wavelength(filter_name: str | None) -> float | None:
    """The effective wavelength of the first known filter of ``filter_name`` (micrometres)."""
    if not filter_name:
        return None
    for part in filter_name.split("&"):
        name = strip_component_id(part.strip())
        for candidate in (name, name.split("_")[0], name.rstrip("+-")):
            if candidate in FILTER_WAVELENGTHS:
                return FILTER_WAVELENGTHS[candidate]
    return None


def wavelength_band(frame: Frame) -> str | None:
    """The band nearest the central wavelength (with a disperser) or the filter's."""
    values = frame.values
    wavelength = values.get("central_wavelength") or filter_wavelength(values.get("filter_name"))
    if wavelength is None:
        return None
    return min(BANDS, key=lambda band: abs(BANDS[band] - wavelength))


def adaptive_optics(frame: Frame) -> bool | None:
    """AOFOLD says whether the AO pick-off mirror was in the beam."""
    fold = frame.get("AOFOLD")
    if fold is None:
        return None
    return str(fold).strip().upper() == "IN"


def laser_guide_star(frame: Frame) -> bool | None:
    """Altair's LGUSTAGE, or GeMS's LGS loop, with AO in the beam."""
    ao = frame.values.get("adaptive_optics")
    if ao is None:
        return None
    if not ao:
        return False
    return frame.upper("LGUSTAGE") == "IN" or frame.upper("LGSLOOP") == "CLOSED"


# -- infrared arrays ------------------------------------------------------------------------

EXPTIME = Keywords(("EXPTIME",), parsers.positive_number)


def exposure_with_coadds(frame: Frame) -> float | None:
    """Total exposure: raw infrared frames give EXPTIME per coadd (DRAGONS multiplies by
    COADDS until the data are prepared)."""
    exptime = EXPTIME.compute(frame)
    coadds = frame.values.get("coadds")
    if exptime is None or not coadds or not frame.raw:
        return exptime
    return exptime * coadds


def coadds_or_one(frame: Frame) -> int | None:
    """COADDS, 1 when the instrument writes none (as DRAGONS assumes)."""
    value = _optional("COADDS", parse=parsers.integer).compute(frame)
    return 1 if value is None and frame.get("COADDS") is None else value


def lookup(keywords: tuple[str, ...], table: dict[Any, str], name: str) -> Derived:
    """The ``table`` entry for the values of ``keywords`` (one keyword: its value; several:
    the tuple); a missing keyword gives NULL (noted on raw frames), a value not in the table
    NULL with a note."""

    def compute(frame: Frame) -> str | None:
        raw = [frame.get(k) for k in keywords]
        if any(v is None for v in raw):
            missing = [k for k, v in zip(keywords, raw, strict=True) if v is None]
            frame.missing(f"{'/'.join(missing)}: missing; {name} left NULL")
            return None
        values = []
        for keyword, value in zip(keywords, raw, strict=True):
            try:
                values.append(parsers.integer(value) if not isinstance(value, str) else value)
            except parsers.Malformed as exc:
                frame.note(f"{keyword}: {exc}")
                return None
        key = values[0] if len(values) == 1 else tuple(values)
        if key not in table:
            frame.note(f"{'/'.join(keywords)}: {key!r} is not a known {name}")
            return None
        return table[key]

    return Derived(compute)


# -- tags, reduction state and mode ---------------------------------------------------------


def processed_kinds(frame: Frame) -> list[str]:
    """The kinds of processed product the reduction software's keywords mark."""
    return [kind for keyword, kind in PROCESSED_KEYWORDS.items() if frame.has(keyword)]


def status_tags(frame: Frame) -> Iterable[str]:
    """RAW / PREPARED / UNPREPARED / PROCESSED, as the reduction software marks its products."""
    kinds = processed_kinds(frame)
    prepared = frame.prepared
    yield "PREPARED" if prepared else "UNPREPARED"
    if kinds:
        yield "PROCESSED"
        yield from (kind for kind in kinds if kind != "SCIENCE")
        if "SCIENCE" in kinds:
            yield "PROCESSED_SCIENCE"
    elif prepared and frame.upper("OBSTYPE") == "OBJECT" and frame.keyword_contains("GMOSAIC"):
        yield "PROCESSED_SCIENCE"
    elif not frame.has("GEM-TLM"):
        yield "RAW"


def observation_tags(frame: Frame) -> Iterable[str]:
    """BIAS / DARK / FLAT / ARC / TWILIGHT / STANDARD / ACQUISITION / SCIENCE."""
    obstype = frame.upper("OBSTYPE")
    obsclass = str(frame.values.get("observation_class") or "").lower()
    if obstype in ("BIAS", "DARK", "ARC", "FLAT", "BPM"):
        yield obstype
    if frame.upper("OBJECT") == "TWILIGHT":
        yield "TWILIGHT"
    if obsclass in ("acq", "acqcal"):
        yield "ACQUISITION"
    elif obstype == "OBJECT" and obsclass in ("partnercal", "progcal"):
        yield "STANDARD"
    elif obstype == "OBJECT" and obsclass == "science" and frame.upper("OBJECT") != "TWILIGHT":
        yield "SCIENCE"


def instrument_tags(frame: Frame) -> Iterable[str]:
    """The instrument's name as a tag (``GMOS-N`` -> ``GMOS_N``)."""
    instrument = frame.values.get("instrument")
    if instrument:
        yield re.sub(r"[^A-Z0-9]+", "_", str(instrument).upper()).strip("_")


def types(frame: Frame) -> str | None:
    """The frame's tags, sorted and space-separated (``BIAS CAL GMOS GMOS_N RAW UNPREPARED``).

    A rule yielding ``!TAG`` removes TAG whichever rule gave it (a GNIRS pinhole flat is not
    a FLAT); CAL follows from the calibration tags.
    """
    tags: set[str] = set()
    for rule in frame.mapping.tags if frame.mapping else ():
        tags.update(rule(frame))
    removed = {tag for tag in tags if tag.startswith("!")}
    tags -= removed | {tag[1:] for tag in removed}
    if tags & CAL_TAGS or "SLITILLUM" in tags:
        tags.add("CAL")
    if "PROCESSED" in tags or "PROCESSED_SCIENCE" in tags:
        tags.discard("RAW")
    if tags & (CAL_TAGS | {"ACQUISITION"}):
        tags.discard("SCIENCE")
    return " ".join(sorted(tags)) or None


def tag_set(frame: Frame) -> frozenset[str]:
    return frozenset((frame.values.get("types") or "").split())


def reduction(frame: Frame) -> str | None:
    """RAW, PREPARED, or PROCESSED_<kind>, as FitsStorage names the reduction states."""
    tags = tag_set(frame)
    if "PROCESSED_SCIENCE" in tags:
        return "PROCESSED_SCIENCE"
    if "PROCESSED" in tags:
        for kind in REDUCTION_KINDS:
            if kind in tags:
                return f"PROCESSED_{kind}"
        return "PROCESSED_UNKNOWN"
    if "PREPARED" in tags:
        return "PREPARED"
    if "RAW" in tags:
        return "RAW"
    return None


def spectroscopy(frame: Frame) -> bool | None:
    """Whether the light was dispersed: SPECT; a frame of a known instrument without it (an
    image, a bias, a dark) was not; the generic default does not know."""
    tags = tag_set(frame)
    if "SPECT" in tags:
        return True
    if "IMAGE" in tags or (frame.mapping is not None and frame.mapping.gemini):
        return False
    return None


def mode(frame: Frame) -> str | None:
    """imaging, longslit, MOS, IFU, or NULL (another spectroscopic mode, or no light)."""
    tags = tag_set(frame)
    if "IMAGE" in tags:
        return "imaging"
    if "SPECT" in tags:
        for tag, name in (("IFU", "IFU"), ("MOS", "MOS"), ("LS", "longslit")):
            if tag in tags:
                return name
    return None


def _optional(*keywords: str, parse: Any = parsers.text) -> Keywords:
    return Keywords(keywords, parse, optional=True)


GENERIC = InstrumentMapping(
    name="generic",
    instruments=(),
    gemini=False,
    fields={
        "program_id": Keywords(("GEMPRGID",)),
        "observation_id": Keywords(("OBSID",)),
        "data_label": Keywords(("DATALAB",)),
        "telescope": Keywords(("TELESCOP",)),
        "instrument": Keywords(("INSTRUME",), hdus=(0, 1)),
        "ut_datetime": Derived(ut_datetime),
        "observation_type": Keywords(("OBSTYPE",)),
        "observation_class": Keywords(("OBSCLASS",)),
        "object": Keywords(("OBJECT",)),
        "ra": Derived(right_ascension),
        "dec": Derived(declination),
        "filter_name": filters("FILTER", "FILTER1", "FILTER2", "FILTER3"),
        "coadds": _optional("COADDS", parse=parsers.integer),
        "exposure_time": Keywords(("EXPTIME",), parsers.positive_number),
        "disperser": _optional("GRATING", "DISPERSR", "GRISM"),
        "focal_plane_mask": _optional("MASKNAME", "FPMASK", "SLIT", "FOCMASK"),
        "central_wavelength": central_wavelength(
            ("CENTWAVE", 1e-3), ("GRWLEN", 1e-3), ("GRATWAVE", 1.0)
        ),
        "detector_binning": Keywords(("CCDSUM",), parsers.binning, hdus=(1, 0)),
        "airmass": Keywords(("AIRMASS",), parsers.number),
        "elevation": telescope_keyword("ELEVATIO", parsers.elevation),
        "cass_rotator_pa": telescope_keyword("CRPA", parsers.rotator_angle),
        "qa_state": Derived(_qa_state),
        "release": Keywords(("RELEASE",), parsers.midnight_datetime),
        "engineering": _program_flag("engineering"),
        "science_verification": _program_flag("science_verification"),
        "calibration_program": _program_flag("calibration_program"),
        "site": Derived(site),
        "local_time": _optional("LT", parse=parsers.clock_time),
        "wavelength_band": Derived(wavelength_band),
        "detector_roi_setting": Constant(None),
        "detector_readmode": _optional("READMODE"),
        "detector_gain_setting": _optional("GAINSET"),
        "detector_welldepth": _optional("WELDEPTH"),
        "amp_read_area": Constant(None),
        "nod_and_shuffle": Constant(None),
        "nod_count": Constant(None),
        "nod_pixels": Constant(None),
        "overscan_trimmed": Constant(None),
        "overscan_subtracted": Constant(None),
        "adaptive_optics": Derived(adaptive_optics),
        "laser_guide_star": Derived(laser_guide_star),
        "raw_iq": _optional("RAWIQ", parse=parsers.percentile),
        "raw_cc": _optional("RAWCC", parse=parsers.percentile),
        "raw_wv": _optional("RAWWV", parse=parsers.percentile),
        "raw_bg": _optional("RAWBG", parse=parsers.percentile),
        "types": Derived(types),
        "reduction": Derived(reduction),
        "spectroscopy": Derived(spectroscopy),
        "mode": Derived(mode),
    },
    tags=(status_tags, observation_tags),
)
