"""Block-average downsampling, band by band: the whole frame is never in memory.

Each tile of a layout is read a band of rows at a time, straight from the memory map in its
stored type, and summed into the blocks of the reduced picture in one pass (``reduceat`` over
the rows of each block, then over its columns). Scaling (BZERO/BSCALE), the overscan level
and the gain are all linear, so they are applied to the block sums, not to every pixel. Sums
and pixel counts are kept apart, so a block shared by two amplifiers is the mean of the
pixels of both; a band whose sums come out NaN or Inf (bad pixels, BLANK) is summed again
over its finite pixels only; a block no pixel falls in (a chip gap) is NaN. Averaging every
pixel of a block is a box filter: nothing is dropped, so noise averages down instead of
aliasing.
"""

from __future__ import annotations

import math

import numpy as np

from fits_storage.preview.layout import Layout, Section, Tile
from fits_storage.preview.reader import Band, Pixels

BAND_PIXELS = 1 << 22  # pixels read at a time


def block_factor(width: int, height: int, longest: int) -> int:
    """The smallest integer factor that brings the longest side to ``longest`` or less."""
    return max(1, math.ceil(max(width, height) / longest))


def overscan_level(pixels: Pixels, index: int, bias: Section | None) -> float:
    """The median of the BIASSEC region, or 0 without one."""
    if bias is None or bias.width <= 0 or bias.height <= 0:
        return 0.0
    values = pixels.read(index, slice(bias.y0, bias.y1), slice(bias.x0, bias.x1))
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else 0.0


def _groups(offset: int, length: int, k: int) -> np.ndarray:
    """Start indices, within ``length`` pixels lying ``offset`` into a block, of each block."""
    first = (k - offset) % k
    starts = np.arange(first, length, k)
    return starts if first == 0 else np.concatenate(([0], starts))


class Reducer:
    """The reduced picture of a layout, ``factor`` times smaller on each side."""

    def __init__(self, layout: Layout, factor: int) -> None:
        self.factor = factor
        self.width = max(1, math.ceil(layout.width / factor))
        self.height = max(1, math.ceil(layout.height / factor))
        self.sum = np.zeros((self.height, self.width), dtype=np.float64)
        self.count = np.zeros((self.height, self.width), dtype=np.float64)

    def add_tile(self, pixels: Pixels, tile: Tile) -> None:
        """Level (overscan median, gain) and sum one tile, a band of rows at a time."""
        level = overscan_level(pixels, tile.hdu, tile.bias)
        data = tile.data
        band = max(1, BAND_PIXELS // max(data.width, 1))
        for start in range(data.y0, data.y1, band):
            stop = min(start + band, data.y1)
            part = pixels.raw(tile.hdu, slice(start, stop), slice(data.x0, data.x1))
            raw = part.raw[:, ::-1] if tile.flip_x else part.raw
            row = start - data.y0
            y = tile.y + (data.height - (row + raw.shape[0]) if tile.flip_y else row)
            if tile.flip_y:
                raw = raw[::-1]
            self.add(Band(raw, part.scale, part.zero, part.blank), tile.x, y, level, tile.gain)
        pixels.release()

    def add(self, band: Band, x: int, y: int, level: float = 0.0, gain: float = 1.0) -> None:
        """Sum ``(value - level) * gain`` of the band (lower-left at picture pixel x, y)."""
        k = self.factor
        h, w = band.raw.shape
        rows, cols = _groups(y % k, h, k), _groups(x % k, w, k)
        sums = self._block_sums(band.raw, rows, cols) if band.blank is None else None
        if sums is not None and np.isfinite(sums).all():
            counts = np.outer(np.diff(rows, append=h), np.diff(cols, append=w)).astype(float)
            sums = sums * band.scale + counts * band.zero
        else:
            values = band.values()
            finite = np.isfinite(values)
            sums = self._block_sums(np.where(finite, values, np.float32(0)), rows, cols)
            counts = self._block_sums(finite.view(np.uint8), rows, cols)
        if level or gain != 1.0:
            sums = (sums - counts * level) * gain
        oy, ox = y // k, x // k
        bh, bw = min(sums.shape[0], self.height - oy), min(sums.shape[1], self.width - ox)
        self.sum[oy : oy + bh, ox : ox + bw] += sums[:bh, :bw]
        self.count[oy : oy + bh, ox : ox + bw] += counts[:bh, :bw]

    @staticmethod
    def _block_sums(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        by_rows = np.add.reduceat(values, rows, axis=0, dtype=np.float64)
        return np.add.reduceat(by_rows, cols, axis=1)

    def result(self) -> np.ndarray:
        """The block means, NaN where no pixel fell; row 0 at the bottom, as in FITS."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum / self.count, np.nan)
