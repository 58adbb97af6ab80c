"""Where each amplifier of a detector frame lands in the assembled picture.

Sections are FITS-style ``[x1:x2,y1:y2]``, 1-based and inclusive. ``DETSEC`` and ``CCDSEC`` are
in unbinned detector pixels, ``DATASEC`` and ``BIASSEC`` in the extension's own (binned)
pixels, ``CCDSUM`` is ``"bx by"``. Amplifiers whose ``DETSEC - CCDSEC`` offset is the same lie
on one chip and abut; chips are separated by a gap of :data:`CHIP_GAP` unbinned pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from astropy.io import fits

CHIP_GAP = 40  # unbinned pixels between chips, as the system we replace drew them
_SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")


class LayoutError(ValueError):
    """A section keyword that cannot be used; the message names it."""


@dataclass(frozen=True)
class Section:
    """0-based, end-exclusive ranges, in the order numpy indexes: rows (y) then columns (x).
    ``flip_x``/``flip_y``: the section was written high-to-low (read out the other way)."""

    y0: int
    y1: int
    x0: int
    x1: int
    flip_x: bool = False
    flip_y: bool = False

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def parse_section(text: str, keyword: str = "section") -> Section:
    """``'[1:512,1:4608]'`` -> Section(0, 4608, 0, 512)."""
    match = _SECTION.match(str(text))
    if not match:
        raise LayoutError(f"{keyword} {text!r} is not of the form [x1:x2,y1:y2]")
    x1, x2, y1, y2 = (int(v) for v in match.groups())
    if min(x1, x2, y1, y2) < 1:
        raise LayoutError(f"{keyword} {text!r} has a coordinate below 1")
    return Section(min(y1, y2) - 1, max(y1, y2), min(x1, x2) - 1, max(x1, x2), x1 > x2, y1 > y2)


def parse_binning(text: object) -> tuple[int, int]:
    """``CCDSUM = '2 2'`` -> (2, 2) as (x, y); missing means unbinned."""
    if text is None:
        return 1, 1
    parts = str(text).split()
    try:
        bx, by = (int(p) for p in parts)
    except ValueError as exc:
        raise LayoutError(f"CCDSUM {text!r} is not two integers") from exc
    if bx < 1 or by < 1:
        raise LayoutError(f"CCDSUM {text!r} must be positive")
    return bx, by


@dataclass(frozen=True)
class Tile:
    """One rectangle of pixels to place: which HDU, which part of it, where it goes (binned
    picture pixels, lower-left origin), and how to level it."""

    hdu: int
    data: Section
    x: int
    y: int
    bias: Section | None = None
    gain: float = 1.0
    flip_x: bool = False
    flip_y: bool = False


@dataclass(frozen=True)
class Layout:
    tiles: tuple[Tile, ...]
    width: int
    height: int


def _shape(header: fits.Header) -> tuple[int, int]:
    return int(header.get("NAXIS2", 1)), int(header.get("NAXIS1", 0))


def _gain(header: fits.Header) -> float:
    try:
        gain = float(header.get("GAIN", 1.0))
    except (TypeError, ValueError):
        return 1.0
    return gain if gain > 0 and gain == gain else 1.0


def is_detector_frame(headers: list[tuple[int, fits.Header]]) -> bool:
    """Every image extension states where it lies on the detector."""
    return len(headers) > 0 and all("DETSEC" in h and "DATASEC" in h for _, h in headers)


@dataclass(frozen=True)
class _Amp:
    hdu: int
    det: Section
    data: Section
    bias: Section | None
    chip: object
    binning: tuple[int, int]
    gain: float


def _amp(index: int, header: fits.Header) -> _Amp:
    det = parse_section(header["DETSEC"], f"HDU {index} DETSEC")
    data = parse_section(header["DATASEC"], f"HDU {index} DATASEC")
    ny, nx = _shape(header)
    if data.x1 > nx or data.y1 > ny:
        raise LayoutError(f"HDU {index} DATASEC {header['DATASEC']} lies outside {nx}x{ny}")
    bias = None
    if "BIASSEC" in header:
        bias = parse_section(header["BIASSEC"], f"HDU {index} BIASSEC")
        if bias.x1 > nx or bias.y1 > ny:
            bias = None
    if "CCDSEC" in header:
        ccd = parse_section(header["CCDSEC"], f"HDU {index} CCDSEC")
        chip: object = (det.x0 - ccd.x0, det.y0 - ccd.y0)
    else:
        chip = str(header.get("CCDNAME", ""))
    binning = parse_binning(header.get("CCDSUM"))
    return _Amp(index, det, data, bias, chip, binning, _gain(header))


def detector_layout(headers: list[tuple[int, fits.Header]], gap: int = CHIP_GAP) -> Layout:
    """Tiles of a multi-amplifier frame placed by DETSEC, with a gap between chips and none
    between the amplifiers of one chip."""
    amps = [_amp(index, header) for index, header in headers]
    bx = min(a.binning[0] for a in amps)
    by = min(a.binning[1] for a in amps)
    origin_x: dict[object, int] = {}
    origin_y: dict[object, int] = {}
    for a in amps:
        origin_x[a.chip] = min(origin_x.get(a.chip, a.det.x0), a.det.x0)
        origin_y[a.chip] = min(origin_y.get(a.chip, a.det.y0), a.det.y0)
    columns = sorted(set(origin_x.values()))
    rows = sorted(set(origin_y.values()))
    tiles = []
    width = height = 0
    for a in amps:
        x = (a.det.x0 + columns.index(origin_x[a.chip]) * gap) // bx
        y = (a.det.y0 + rows.index(origin_y[a.chip]) * gap) // by
        data = a.data
        tiles.append(Tile(a.hdu, data, x, y, a.bias, a.gain, a.det.flip_x, a.det.flip_y))
        width = max(width, x + data.width)
        height = max(height, y + data.height)
    return Layout(tuple(tiles), width, height)


def side_by_side(headers: list[tuple[int, fits.Header]], gap: int = CHIP_GAP) -> Layout:
    """Extensions that are not parts of one detector, shown left to right with a gap."""
    tiles = []
    x = 0
    height = 0
    for index, header in headers:
        ny, nx = _shape(header)
        tiles.append(Tile(index, Section(0, ny, 0, nx), x, 0))
        x += nx + gap
        height = max(height, ny)
    return Layout(tuple(tiles), max(x - gap, 0), height)
