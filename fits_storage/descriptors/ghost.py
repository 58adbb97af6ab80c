"""GHOST: the fibre-fed echelle spectrograph. A raw file is a bundle: a minimal primary
header, then for each exposure of each arm a header-only "nascent" primary header (CAMERA
``BLUE`` or ``RED``, NAMPS) followed by its amplifier extensions, and the slit-viewer
images (CAMERA ``SLITV``).

Semantics of DRAGONS' ``ghost_instruments``: resolution mode from SMPNAME (the archive's
focal-plane mask ``HR``/``SR``), read speed from READMODE (0 slow, 1 medium, 2 fast), gain
setting from GAIN (up to 1 e-/ADU: low), the time from the first arm's nascent header when
the bundle's own has none. Binning is the arms' CCDSUM when both arms agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from fits_storage.descriptors import parsers
from fits_storage.descriptors.frame import Frame
from fits_storage.descriptors.generic import GENERIC, instrument_tags, ut_datetime
from fits_storage.descriptors.gmos import amp_read_area
from fits_storage.descriptors.mapping import Constant, Derived

ARMS = ("BLUE", "RED")
READ_SPEEDS = {0: "slow", 1: "medium", 2: "fast"}
PROCESSED_KEYWORDS = {
    "PRSLITBI": "BIAS",
    "PRSLITDA": "DARK",
    "PRSLITFL": "FLAT",
    "PRSLITIM": "SLITV",
    "PRWAVLFT": "ARC",
    "PRPOLYFT": "FLAT",
    "PROCSTND": "STANDARD",
}


def arm_extensions(frame: Frame) -> dict[int, str]:
    """Extension index -> arm (BLUE/RED/SLITV) of every extension of a bundle, following
    each nascent header's CAMERA to the amplifier extensions after it."""
    arms, current = {}, None
    for hdu in range(1, frame.extension_count + 1):
        camera = frame.get("CAMERA", hdu)
        if camera is not None:
            current = str(camera).upper()
        if current is not None:
            arms[hdu] = current
    return arms


def _first_arm(frame: Frame) -> int | None:
    return next((h for h, arm in arm_extensions(frame).items() if arm in ARMS), None)


def _arm_value(frame: Frame, keyword: str) -> object:
    """``keyword`` of the primary header, else of the first arm's nascent header."""
    value = frame.get(keyword)
    if value is None and (hdu := _first_arm(frame)) is not None:
        value = frame.get(keyword, hdu)
    return value


def ghost_ut_datetime(frame: Frame) -> object:
    if frame.get("DATE-OBS") is None and frame.get("MJD-OBS") is None:
        hdu = _first_arm(frame)
        if hdu is not None:
            return ut_datetime(frame, hdu)
    return ut_datetime(frame)


def binning(frame: Frame) -> str | None:
    values = {}
    arms = arm_extensions(frame) or {0: str(frame.get("CAMERA") or "").upper()}
    for hdu, arm in arms.items():
        ccdsum = frame.get("CCDSUM", hdu)
        if ccdsum is None or arm not in ARMS:
            continue
        try:
            values.setdefault(arm, set()).add(parsers.binning(ccdsum))
        except parsers.Malformed as exc:
            frame.note(f"CCDSUM: {exc} (extension {hdu})")
    found = set().union(*values.values()) if values else set()
    if not found:
        frame.missing("CCDSUM: missing (arms)")
        return None
    if len(found) > 1:
        detail = ", ".join(f"{arm.lower()} {'/'.join(sorted(b))}" for arm, b in values.items())
        frame.note(f"CCDSUM: the arms differ ({detail}); binning left NULL")
        return None
    return found.pop()


def resolution(frame: Frame) -> str | None:
    mode = _arm_value(frame, "SMPNAME")
    if mode is None:
        frame.missing("SMPNAME: missing")
        return None
    if str(mode).endswith("HI_ONLY"):
        return "HR"
    if str(mode).endswith(("LO_ONLY", "STD_ONLY")):
        return "SR"
    frame.note(f"SMPNAME: {mode!r} names no resolution mode")
    return None


def read_speed(frame: Frame) -> str | None:
    value = _arm_value(frame, "READMODE")
    if value is None:
        frame.missing("READMODE: missing")
        return None
    try:
        return READ_SPEEDS[parsers.integer(value)]
    except (parsers.Malformed, KeyError):
        frame.note(f"READMODE: {value!r} is not 0, 1 or 2")
        return None


def gain_setting(frame: Frame) -> str | None:
    arms = arm_extensions(frame)
    gains = []
    for hdu in [h for h, arm in arms.items() if arm in ARMS] or [0]:
        value = frame.get("GAIN", hdu)
        if value is None:
            continue
        try:
            gains.append(parsers.number(value))
        except parsers.Malformed as exc:
            frame.note(f"GAIN: {exc}{'' if not hdu else f' (extension {hdu})'}")
    if not gains:
        frame.missing("GAIN: missing (arms)")
        return None
    low = [g <= 1.0 for g in gains]
    if all(low):
        return "low"
    if not any(low):
        return "high"
    frame.note("GAIN: some amplifiers are at low gain and some at high")
    return None


def ghost_tags(frame: Frame) -> Iterable[str]:
    yield from instrument_tags(frame)
    camera = frame.upper("CAMERA")
    obstype = frame.upper("OBSTYPE")
    kinds = [kind for keyword, kind in PROCESSED_KEYWORDS.items() if frame.has(keyword)]
    if kinds:
        yield "PROCESSED"
        yield from kinds
    if camera.startswith("SLIT"):
        yield from ("SLITV", "IMAGE")
        return
    if camera in ARMS:
        yield camera
    elif arm_extensions(frame):
        yield "BUNDLE"
    if obstype not in ("BIAS", "DARK"):
        yield from ("SPECT", "XD")


GHOST = GENERIC.extend(
    "GHOST",
    ("GHOST",),
    fields={
        "ut_datetime": Derived(ghost_ut_datetime),
        "coadds": Constant(1),
        "filter_name": Constant(None),
        "disperser": Constant(None),
        "focal_plane_mask": Derived(resolution),
        "central_wavelength": Constant(None),
        "detector_binning": Derived(binning),
        "detector_readmode": Derived(read_speed),
        "detector_gain_setting": Derived(gain_setting),
        "amp_read_area": Derived(amp_read_area),
    },
    tags=(ghost_tags,),
)
