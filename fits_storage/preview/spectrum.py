"""A 1-D spectrum as a small line plot, drawn with Pillow.

Each column of the plot covers a run of samples and shows their minimum-to-maximum range, so
a narrow emission line is never lost between columns however long the spectrum is.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

FULL_SIZE = (1024, 512)
THUMB_SIZE = (256, 128)
MARGIN = 0.05


def plot(values: np.ndarray, size: tuple[int, int] = FULL_SIZE) -> Image.Image:
    """A white picture with the spectrum in black; non-finite samples leave gaps."""
    width, height = size
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    data = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(data)
    if not finite.any():
        return image
    low, high = np.percentile(data[finite], [0.1, 99.9])
    if not high > low:
        low, high = low - 1.0, high + 1.0
    pad = (high - low) * MARGIN
    low, high = low - pad, high + pad
    columns = min(width, data.size)
    edges = np.linspace(0, data.size, columns + 1).astype(int)
    inner = height - 1

    def y_of(v: float) -> float:
        return inner - (min(max(v, low), high) - low) / (high - low) * inner

    previous = None
    for column in range(columns):
        chunk = data[edges[column] : max(edges[column + 1], edges[column] + 1)]
        chunk = chunk[np.isfinite(chunk)]
        if chunk.size == 0:
            previous = None
            continue
        x = column * (width - 1) / max(columns - 1, 1)
        top, bottom, mid = y_of(chunk.max()), y_of(chunk.min()), y_of(float(chunk.mean()))
        draw.line([(x, top), (x, bottom)], fill=0)
        if previous is not None:
            draw.line([previous, (x, mid)], fill=0)
        previous = (x, mid)
    return image
