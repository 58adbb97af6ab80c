"""Block-average downsampling, band by band: the whole frame is never in memory.

Each tile of a layout is read a band of rows at a time, straight from the memory map in its
stored type, and summed into the blocks of the reduced picture (the rows of each block, then its
columns, through reshapes). Scaling (BZERO/BSCALE), the overscan level
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

BAND_PIXELS = 1 << 20  # pixels read at a time


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


def _sizes(offset: int, length: int, k: int) -> np.ndarray:
    """How many of ``length`` pixels, the first lying ``offset`` into a block, fall in each."""
    head = min((k - offset) % k, length)
    body, tail = divmod(length - head, k)
    sizes = [head] * bool(head) + [k] * body + [tail] * bool(tail)
    return np.array(sizes, dtype=np.float64)


def _sum_rows(values: np.ndarray, offset: int, k: int) -> np.ndarray:
    """Float32 sums of the rows of each block, read in the values' stored type (no converted
    copy of the band): whole blocks as k strided row slices added, a partial first and last
    block apart."""
    h = values.shape[0]
    head = min((k - offset) % k, h)
    body = (h - head) // k
    parts = []
    if head:
        parts.append(values[:head].sum(axis=0, keepdims=True, dtype=np.float32))
    if body:
        stop = head + body * k
        whole = values[head:stop:k].astype(np.float32)
        for shift in range(1, k):
            np.add(whole, values[head + shift : stop : k], out=whole, dtype=np.float32)
        parts.append(whole)
    if head + body * k < h:
        parts.append(values[head + body * k :].sum(axis=0, keepdims=True, dtype=np.float32))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _sum_columns(values: np.ndarray, offset: int, k: int) -> np.ndarray:
    """Sums of the columns of each block: whole blocks as k strided slices added (k passes
    over an array already k times smaller), a partial first and last block apart."""
    w = values.shape[1]
    head = min((k - offset) % k, w)
    body = (w - head) // k
    parts = []
    if head:
        parts.append(values[:, :head].sum(axis=1, keepdims=True))
    if body:
        stop = head + body * k
        whole = values[:, head:stop:k].copy()
        for shift in range(1, k):
            whole += values[:, head + shift : stop : k]
        parts.append(whole)
    if head + body * k < w:
        parts.append(values[:, head + body * k :].sum(axis=1, keepdims=True))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _block_sums(values: np.ndarray, row_offset: int, col_offset: int, k: int) -> np.ndarray:
    """Float32 sums of each block (at most a few hundred pixels: ample precision), as float64.
    Integer pixels are exact in float32 up to 2**24, which covers 16-bit raw data."""
    return _sum_columns(_sum_rows(values, row_offset, k), col_offset, k).astype(np.float64)


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
        sums = counts = None
        if band.blank is None:
            sums = _block_sums(band.raw, y % k, x % k, k)
        if sums is not None and np.isfinite(sums).all():
            counts = np.outer(_sizes(y % k, h, k), _sizes(x % k, w, k))
            if band.scale != 1.0 or band.zero:
                sums = sums * band.scale + counts * band.zero
        else:
            values = band.values()
            finite = np.isfinite(values)
            sums = _block_sums(np.where(finite, values, np.float32(0)), y % k, x % k, k)
            counts = _block_sums(finite.astype(np.float32), y % k, x % k, k)
        if level or gain != 1.0:
            sums = (sums - counts * level) * gain
        oy, ox = y // k, x // k
        bh, bw = min(sums.shape[0], self.height - oy), min(sums.shape[1], self.width - ox)
        self.sum[oy : oy + bh, ox : ox + bw] += sums[:bh, :bw]
        self.count[oy : oy + bh, ox : ox + bw] += counts[:bh, :bw]

    def result(self) -> np.ndarray:
        """The block means, NaN where no pixel fell; row 0 at the bottom, as in FITS."""
        means = np.full(self.sum.shape, np.nan)
        return np.divide(self.sum, self.count, out=means, where=self.count > 0)
