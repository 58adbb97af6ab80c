"""GMOS-N and GMOS-S: FitsStorage's rules (fits_storage/cal/calibration/calibration_gmos.py)
on our header columns. Binning is ``detector_binning`` ("2x2") for FitsStorage's x and y bins,
read speed ``detector_readmode``, gain ``detector_gain_setting``.

Left out, for want of the columns: the overscan state of prepared frames (processed biases),
nod count and pixels (darks), and the elevation and Cassegrain rotator tolerances of
spectroscopy flats.
"""

from __future__ import annotations

import re

from fits_storage.cal.checks import (
    CONTAINS,
    EQUAL,
    HAS_TAG,
    LIKE,
    NOT_EQUAL,
    ONE_OF,
    Check,
    Within,
)
from fits_storage.cal.rules import Frame, Order, Rule, RuleSet, processed, raw

FULL_READS = ("Full Frame", "Central Spectrum")
DETECTOR = ("detector_binning", "detector_readmode", "detector_gain_setting")
FLAT_MATCH = (
    "detector_binning",
    "filter_name",
    "detector_readmode",
    "detector_gain_setting",
    "spectroscopy",
    "focal_plane_mask",  # for imaging too: no daytime through-mask "flats"
    "disperser",
)
_GRATING = re.compile(r"^[BR](\d+)")


def amp_read_area(frame: Frame) -> tuple[Check, ...]:
    """A full or central-spectrum read must match the calibration's amplifiers exactly; a
    smaller ROI's amplifiers must be among the calibration's."""
    if frame.get("detector_roi_setting") in FULL_READS:
        return (Check("amp_read_area", EQUAL, frame.get("amp_read_area")),)
    if frame.get("amp_read_area") is not None:
        return (Check("amp_read_area", CONTAINS, frame["amp_read_area"]),)
    return ()


def arc_slit_and_area(frame: Frame, processed_arc: bool) -> tuple[Check, ...]:
    mask = frame.get("focal_plane_mask")
    checks: tuple[Check, ...]
    if mask == "5.0arcsec":
        checks = (Check("focal_plane_mask", LIKE, "%arcsec"),)
    else:
        checks = (Check("focal_plane_mask", EQUAL, mask),)
    if not processed_arc:
        return checks + amp_read_area(frame)
    if frame.get("detector_roi_setting") == "Central Spectrum":
        return checks + (Check("detector_roi_setting", ONE_OF, FULL_READS),)
    return checks + (Check("detector_roi_setting", EQUAL, "Full Frame"),)


def dispersion(disperser: str | None) -> float:
    """Approximate micrometres per unbinned pixel of a grating (0.03 / lines per mm), the
    finest (1200 l/mm) when it cannot be told."""
    match = _GRATING.match(disperser or "")
    lines = float(match.group(1)) if match else 1200.0
    return 0.03 / lines


def wavelength_tolerance(frame: Frame, pixels: int = 200) -> float:
    return pixels * dispersion(frame.get("disperser"))


def _tags(frame: Frame) -> set[str]:
    return set((frame.get("types") or "").split())


def specphot_mask(frame: Frame) -> tuple[Check, ...]:
    """MOS or longslit science takes any longslit standard, IFU the same IFU kind."""
    tags = _tags(frame)
    if "MOS" in tags or "LS" in tags or frame.get("mode") in ("MOS", "longslit"):
        mask = Check("focal_plane_mask", CONTAINS, "arcsec")
    elif "IFU" in tags or frame.get("mode") == "IFU":
        mask = Check("focal_plane_mask", CONTAINS, "IFU")
    else:
        mask = Check("focal_plane_mask", EQUAL, frame.get("focal_plane_mask"))
    near = Within(specphot_tolerance(frame))
    return (mask, Check("central_wavelength", near, frame.get("central_wavelength")))


def specphot_tolerance(frame: Frame) -> float:
    """200 unbinned pixels' worth of wavelength, 1000 for MOS (dithered slits)."""
    return wavelength_tolerance(frame, 1000 if "MOS" in _tags(frame) else 200)


def spectroscopic(frame: Frame) -> bool:
    return frame.get("spectroscopy") is True


def imaging(frame: Frame) -> bool:
    return not frame.get("spectroscopy")


def not_imaging(frame: Frame) -> bool:
    """FitsStorage's ``@not_imaging``: only a frame known to be imaging is refused."""
    return frame.get("spectroscopy") is not False


def applicable(frame: Frame) -> list[str]:
    """The types a GMOS frame needs (FitsStorage's ``set_applicable``)."""
    obstype, obsclass = frame.get("observation_type"), frame.get("observation_class")
    tags = _tags(frame)
    if obstype in ("MASK", "BPM") or "PROCESSED_SCIENCE" in tags:
        return []
    if (frame.get("reduction") or "RAW").startswith("PROCESSED"):
        return []
    types: list[str] = []
    if not (
        obstype in ("BIAS", "ARC")
        or obsclass in ("acq", "acqCal")
        or frame.get("detector_roi_setting") == "Central Stamp"
    ):
        types += ["bias", "processed_bias"]
    twilight = frame.get("object") == "Twilight"
    if frame.get("spectroscopy") is True and obstype == "FLAT":
        types += ["arc", "processed_arc"]
    if frame.get("spectroscopy") is True and obstype == "OBJECT" and not twilight:
        types += ["arc", "processed_arc", "flat", "processed_flat"]
        if "STANDARD" not in tags:
            types.append("standard")
            if frame.get("central_wavelength") is not None:
                types.append("processed_standard")
    if (
        frame.get("spectroscopy") is False
        and frame.get("focal_plane_mask") == "Imaging"
        and obstype == "OBJECT"
        and not twilight
        and obsclass not in ("acq", "acqCal")
    ):
        types += ["flat", "processed_flat"]
        if obsclass == "science":
            types.append("standard")
    if frame.get("nod_and_shuffle") is True and obstype == "OBJECT":
        when = frame.get("ut_datetime")
        if when is None or when.year < 2020:
            types += ["dark", "processed_dark"]
    return types


def _rules() -> tuple[Rule, ...]:
    twilight = (
        Check("reduction", EQUAL, "RAW"),
        Check("observation_type", EQUAL, "OBJECT"),
        Check("observation_class", EQUAL, "dayCal"),
        Check("object", EQUAL, "Twilight"),
    )
    specphot_kind = (
        Check("reduction", EQUAL, "RAW"),
        Check("observation_type", EQUAL, "OBJECT"),
        Check("spectroscopy", EQUAL, True),
        Check("types", HAS_TAG, "STANDARD"),
        Check("object", NOT_EQUAL, "Twilight"),
    )
    specphot = {
        "match": ("filter_name", "disperser"),  # no binning needed
        "extra": specphot_mask,
        "window_days": 183,
        "howmany": 4,
        "when": spectroscopic,
    }
    rules = [
        Rule("bias", raw("BIAS"), DETECTOR, extra=amp_read_area, window_days=90, howmany=50),
        Rule("processed_bias", processed("BIAS"), DETECTOR, extra=amp_read_area, window_days=90),
        Rule(
            "dark",
            raw("DARK"),
            DETECTOR,
            {"exposure_time": 50.0},
            extra=amp_read_area,
            window_days=365,
            howmany=15,
        ),
        Rule(
            "processed_dark",
            processed("DARK"),
            DETECTOR,
            {"exposure_time": 50.0},
            extra=amp_read_area,
            window_days=365,
        ),
        Rule(
            "flat",
            raw("FLAT"),
            FLAT_MATCH,
            {"central_wavelength": 0.001},
            extra=amp_read_area,
            window_days=180,
            howmany=2,
            when=spectroscopic,
        ),
        Rule("flat", twilight, FLAT_MATCH, extra=amp_read_area, window_days=180, howmany=20),
        Rule(
            "processed_flat",
            processed("FLAT", ("FLAT", "OBJECT")),
            FLAT_MATCH,
            {"central_wavelength": 0.001},
            extra=amp_read_area,
            window_days=180,
            when=spectroscopic,
        ),
        Rule(
            "processed_flat",
            processed("FLAT", ("FLAT", "OBJECT")),
            FLAT_MATCH,
            extra=amp_read_area,
            window_days=180,
        ),
    ]
    for name, is_processed in (("arc", False), ("processed_arc", True)):
        rules.append(
            Rule(
                name,
                processed("ARC") if is_processed else raw("ARC"),
                ("disperser", "filter_name", "detector_binning"),
                {"central_wavelength": 0.001},
                extra=lambda frame, p=is_processed: arc_slit_and_area(frame, p),
                window_days=365,
                when=not_imaging,
            )
        )
    rules += [
        Rule(
            "standard",
            specphot_kind,
            **specphot,
            order=Order(365, specphot_tolerance),
        ),
        Rule(
            "standard",
            (
                Check("observation_type", EQUAL, "OBJECT"),
                Check("observation_class", EQUAL, "partnerCal"),
                Check("program_id", LIKE, "G_-CAL%"),
            ),
            ("filter_name",),
            window_days=1,
            howmany=4,
            when=imaging,
        ),
        Rule(
            "processed_standard",
            processed("STANDARD", ("OBJECT",)),
            **specphot,
            order=Order(365, specphot_tolerance),
        ),
    ]
    return tuple(rules)


GMOS = RuleSet(_rules(), applicable)
