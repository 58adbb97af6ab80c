"""From reduced pixel values to 8-bit grey JPEGs of the two preview sizes.

The stretch is astropy's: zscale (IRAF's, the default) or robust percentiles, optionally
followed by an asinh stretch for faint structure beside bright stars. Limits come from the
finite values only; NaN and Inf become black, and a constant image a flat mid-grey.
"""

from __future__ import annotations

import io

import numpy as np
from astropy.visualization import AsinhStretch, AsymmetricPercentileInterval, ZScaleInterval
from PIL import Image

FULL = 1024
THUMB = 256
QUALITY = 90
STRETCHES = ("zscale", "percentile")


def limits(finite_values: np.ndarray, stretch: str = "zscale") -> tuple[float, float] | None:
    """Display limits from finite values, or None when there are none."""
    if finite_values.size == 0:
        return None
    if stretch == "percentile":
        low, high = AsymmetricPercentileInterval(0.5, 99.5).get_limits(finite_values)
    else:
        low, high = ZScaleInterval().get_limits(finite_values)
    return float(low), float(high)


def to_grey(values: np.ndarray, stretch: str = "zscale", asinh: bool = False) -> np.ndarray:
    """uint8 grey levels of ``values`` (FITS orientation in, display orientation out)."""
    finite = np.isfinite(values)
    everywhere = bool(finite.all())
    bounds = limits(values.ravel() if everywhere else values[finite], stretch)
    if bounds is None:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = bounds
    if not high > low:
        return np.where(finite, np.uint8(128), np.uint8(0))[::-1]
    scaled = values.astype(np.float32)
    if not everywhere:
        scaled[~finite] = low  # drawn black below
    scaled -= np.float32(low)
    scaled *= np.float32(1.0 / (high - low))
    np.clip(scaled, 0.0, 1.0, out=scaled)
    if asinh:
        scaled = AsinhStretch()(scaled, clip=True, out=scaled)
    scaled *= np.float32(255)
    scaled += np.float32(0.5)
    grey = scaled.astype(np.uint8)
    if not everywhere:
        grey[~finite] = 0
    return grey[::-1]


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=QUALITY, optimize=True)
    return buffer.getvalue()


def fit_within(width: int, height: int, longest: int) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` picture scaled so its longest side is at most
    ``longest`` (never enlarged); deterministic, at least 1 pixel."""
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def thumbnail(image: Image.Image, longest: int = THUMB) -> Image.Image:
    """A smaller copy: box-averaged to within twice the size, then resampled with a Lanczos
    filter (no pixel is simply dropped)."""
    size = fit_within(*image.size, longest)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
