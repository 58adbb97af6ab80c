"""The rules of every instrument without its own: the same detector set-up and optical
configuration, within a few months, closest in time first. Written for the common case
(a CCD or infrared array, imaging and long-slit); an instrument that needs more gets its own
module, registered in instruments.py."""

from __future__ import annotations

from fits_storage.cal.rules import Frame, Rule, RuleSet, processed, raw

DETECTOR = ("detector_binning", "detector_readmode", "detector_gain_setting")
OPTICS = ("filter_name", "disperser", "focal_plane_mask")


def spectroscopic(frame: Frame) -> bool:
    return frame.get("spectroscopy") is True


def applicable(frame: Frame) -> list[str]:
    """Science-like frames (OBJECT, raw) need biases, darks and flats; spectra need arcs."""
    if frame.get("observation_type") != "OBJECT":
        return []
    if (frame.get("reduction") or "RAW") != "RAW":
        return []
    types = ["bias", "processed_bias", "dark", "processed_dark", "flat", "processed_flat"]
    if spectroscopic(frame):
        types += ["arc", "processed_arc"]
    return types


def _rules() -> tuple[Rule, ...]:
    wavelength = {"central_wavelength": 0.001}
    dark_match = DETECTOR + ("coadds",)
    exposure = {"exposure_time": 1.0}
    return (
        Rule("bias", raw("BIAS"), DETECTOR, window_days=90, howmany=20),
        Rule("processed_bias", processed("BIAS"), DETECTOR, window_days=90),
        Rule("dark", raw("DARK"), dark_match, exposure, window_days=90, howmany=10),
        Rule("processed_dark", processed("DARK"), dark_match, exposure, window_days=90),
        Rule("flat", raw("FLAT"), DETECTOR + OPTICS, wavelength, window_days=180, howmany=10),
        Rule(
            "processed_flat",
            processed("FLAT", ("FLAT", "OBJECT")),
            DETECTOR + OPTICS,
            wavelength,
            window_days=180,
        ),
        Rule(
            "arc",
            raw("ARC"),
            ("detector_binning",) + OPTICS,
            wavelength,
            window_days=365,
            when=spectroscopic,
        ),
        Rule(
            "processed_arc",
            processed("ARC"),
            ("detector_binning",) + OPTICS,
            wavelength,
            window_days=365,
            when=spectroscopic,
        ),
    )


DEFAULT = RuleSet(_rules(), applicable)
