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


def limits(values: np.ndarray, stretch: str = "zscale") -> tuple[float, float] | None:
    """Display limits from the finite values, or None when there are none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    if stretch == "percentile":
        low, high = AsymmetricPercentileInterval(0.5, 99.5).get_limits(finite)
    else:
        low, high = ZScaleInterval().get_limits(finite)
    return float(low), float(high)


def to_grey(values: np.ndarray, stretch: str = "zscale", asinh: bool = False) -> np.ndarray:
    """uint8 grey levels of ``values`` (FITS orientation in, display orientation out)."""
    grey = np.zeros(values.shape, dtype=np.uint8)
    finite = np.isfinite(values)
    bounds = limits(values, stretch)
    if bounds is not None:
        low, high = bounds
        if not high > low:
            grey[finite] = 128
        else:
            with np.errstate(invalid="ignore"):
                scaled = np.clip((values - low) / (high - low), 0.0, 1.0)
            if asinh:
                scaled = AsinhStretch()(scaled, clip=True)
            grey[finite] = np.round(scaled[finite] * 255).astype(np.uint8)
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
    """A smaller copy, resampled with a Lanczos filter (no pixel is simply dropped)."""
    size = fit_within(*image.size, longest)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
