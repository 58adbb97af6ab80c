"""GMOS-N and GMOS-S: FitsStorage's rules (fits_storage/cal/calibration/calibration_gmos.py)
on our header columns. Binning is ``detector_binning`` ("2x2") for FitsStorage's x and y bins,
read speed ``detector_readmode``, gain ``detector_gain_setting``; FitsStorage's ``prepared``
column is the PREPARED tag of ``types`` (the same test, DRAGONS' PREPARED tag, so no column of
its own); ``nodandshuffle`` is ``nod_and_shuffle``.

Where FitsStorage's Python decides a condition at run time, so does ``extra`` here, frame by
frame: the overscan state of processed biases (only for a prepared frame) and the telescope
position of spectroscopy flats (only for a frame with an elevation; see
:func:`flexure_checks`).
"""

from __future__ import annotations

import math
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
# Darks: FitsStorage matches nod count and pixels always (NULL with NULL for a frame that is not
# nod-and-shuffle, so those take only darks that are not either).
DARK_MATCH = DETECTOR + ("nod_count", "nod_pixels")
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


def overscan_state(frame: Frame) -> tuple[Check, ...]:
    """Processed biases for a prepared frame: the same overscan state (trimmed, subtracted).
    An unprepared frame's intentions are unknown: any (FitsStorage sends what it has)."""
    if "PREPARED" not in _tags(frame):
        return ()
    return (
        Check("overscan_trimmed", EQUAL, frame.get("overscan_trimmed")),
        Check("overscan_subtracted", EQUAL, frame.get("overscan_subtracted")),
    )


def processed_bias_checks(frame: Frame) -> tuple[Check, ...]:
    return amp_read_area(frame) + overscan_state(frame)


def flexure_checks(frame: Frame) -> tuple[Check, ...]:
    """Spectroscopy flats must have been taken near the frame's telescope position (flexure),
    decided as FitsStorage's ``spectroscopy_flat`` decides it, quirks included:

    - no elevation on the frame: no condition;
    - the elevation threshold is 7.5 degrees once the frame has a focal-plane mask, and 15
      once FitsStorage's MOS-or-longslit test (central wavelength above 0.55 um, or an R150
      grating) can be evaluated at all (a central wavelength, and a disperser unless the
      wavelength already decides it), whatever its outcome;
    - the elevation must be within that threshold for an IFU mask (``IFU...``) or when that
      test is true;
    - below 85 degrees, the Cassegrain rotator angle must be within the threshold over
      cos(elevation) (the sky rotation an angle error makes shrinks towards the zenith), a
      threshold of 0 (no mask and no usable wavelength) accepting nothing, as there.

    A frame without a rotator angle skips that check (FitsStorage's tolerance skips a None).
    Our ``disperser`` keeps the component id (``R150+_G5326``) where FitsStorage's drops it;
    the R150 test reads the start of the name, the same either way.
    """
    elevation = frame.get("elevation")
    if elevation is None:
        return ()
    mask, disperser = frame.get("focal_plane_mask"), frame.get("disperser")
    wavelength = frame.get("central_wavelength")
    threshold, ifu, mos_or_ls = 0.0, False, False
    if mask is not None:
        ifu, threshold = mask.startswith("IFU"), 7.5
    if wavelength is not None and (wavelength > 0.55 or disperser is not None):
        mos_or_ls = wavelength > 0.55 or disperser.startswith("R150")
        threshold = 15.0
    checks = []
    if ifu or mos_or_ls:
        checks.append(Check("elevation", Within(threshold), elevation))
    if elevation < 85:
        rotator = threshold / math.cos(math.radians(elevation))
        checks.append(Check("cass_rotator_pa", Within(rotator), frame.get("cass_rotator_pa")))
    return tuple(checks)


def spectroscopy_flat_checks(frame: Frame) -> tuple[Check, ...]:
    return amp_read_area(frame) + flexure_checks(frame)


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
        Rule(
            "processed_bias",
            processed("BIAS"),
            DETECTOR,
            extra=processed_bias_checks,
            window_days=90,
        ),
        Rule(
            "dark",
            raw("DARK"),
            DARK_MATCH,
            {"exposure_time": 50.0},
            extra=amp_read_area,
            window_days=365,
            howmany=15,
        ),
        Rule(
            "processed_dark",
            processed("DARK"),
            DARK_MATCH,
            {"exposure_time": 50.0},
            extra=amp_read_area,
            window_days=365,
        ),
        Rule(
            "flat",
            raw("FLAT"),
            FLAT_MATCH,
            {"central_wavelength": 0.001},
            extra=spectroscopy_flat_checks,
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
            extra=spectroscopy_flat_checks,
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
