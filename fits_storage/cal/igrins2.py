"""IGRINS-2: FitsStorage's rules (calibration_igrins2.py). Everything they need is in
``header``. Neither rule has a time window: the closest in time win, however far."""

from __future__ import annotations

from fits_storage.cal.checks import AT_LEAST, EQUAL, Check
from fits_storage.cal.rules import Frame, Rule, RuleSet, processed, raw

# FLAT exposures under 3.5 s (typically 3.2) are test frames, never calibrations.
SHORTEST_FLAT = 3.5


def applicable(frame: Frame) -> list[str]:
    """OBJECT frames (science, and the sky frames that serve as arcs) need a flat and an
    arc."""
    if frame.get("observation_type") == "OBJECT":
        return ["flat", "arc"]
    return []


def _long_enough(_frame: Frame) -> tuple[Check, ...]:
    return (Check("exposure_time", AT_LEAST, SHORTEST_FLAT),)


# The "arcs" are blank-sky OBJECT frames, whatever their reduction state.
BLANK_SKY = (Check("observation_type", EQUAL, "OBJECT"), Check("object", EQUAL, "Blank sky"))

IGRINS2 = RuleSet(
    (
        Rule("flat", raw("FLAT"), extra=_long_enough, howmany=30),
        Rule("processed_flat", processed("FLAT"), extra=_long_enough, howmany=30),
        Rule("arc", BLANK_SKY),
    ),
    applicable,
)
