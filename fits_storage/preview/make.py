"""What picture a file gets, or a note saying why it gets none.

* a detector frame (every image extension has DETSEC and DATASEC) is assembled into one
  picture, chips apart and amplifiers levelled (:mod:`.layout`, :mod:`.reduce`);
* other images are drawn one (a single image) or side by side (several extensions; only the
  SCI ones when extensions are named so);
* a 1-D spectrum gets a line plot (:mod:`.spectrum`);
* tables and header-only files get a note, which is not a failure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image

from fits_storage.preview import picture, spectrum
from fits_storage.preview.errors import PreviewError
from fits_storage.preview.layout import (
    Layout,
    LayoutError,
    Section,
    Tile,
    detector_layout,
    is_detector_frame,
    side_by_side,
)
from fits_storage.preview.reader import Pixels, contents, open_fits, uncompressed
from fits_storage.preview.reduce import Reducer, block_factor

SIZES = ("full", "thumb")


@dataclass(frozen=True)
class Picture:
    size: str
    jpeg: bytes
    width: int
    height: int

    @property
    def md5(self) -> str:
        return hashlib.md5(self.jpeg).hexdigest()


@dataclass(frozen=True)
class PreviewResult:
    """The pictures made (full then thumb), or none and the note why; ``kind`` says what
    was drawn, for the log."""

    pictures: tuple[Picture, ...] = ()
    note: str | None = None
    kind: str = ""


def layout_of(images: list[tuple[int, fits.Header]]) -> tuple[Layout, str]:
    if len(images) > 1 and is_detector_frame(images):
        return detector_layout(images), f"mosaic of {len(images)} amplifiers"
    if len(images) == 1:
        index, header = images[0]
        ny, nx = int(header.get("NAXIS2", 1)), int(header.get("NAXIS1", 1))
        return Layout((Tile(index, Section(0, ny, 0, nx), 0, 0),), nx, ny), "image"
    return side_by_side(images), f"{len(images)} extensions side by side"


def reduced_image(pixels: Pixels, layout: Layout, longest: int) -> np.ndarray:
    """The layout's pixels block-averaged to at most ``longest`` on the long side."""
    reducer = Reducer(layout, block_factor(layout.width, layout.height, longest))
    for tile in layout.tiles:
        reducer.add_tile(pixels, tile)
    return reducer.result()


def _pictures(full: Image.Image, thumb: Image.Image) -> tuple[Picture, ...]:
    return tuple(
        Picture(size, picture.jpeg(image), *image.size)
        for size, image in zip(SIZES, (full, thumb), strict=True)
    )


def draw(pixels: Pixels, label: str, stretch: str = "zscale", asinh: bool = False) -> PreviewResult:
    """The previews of an opened file."""
    hdulist = pixels.hdulist
    found = contents(hdulist)
    try:
        if found.images:
            layout, kind = layout_of(found.images)
            values = reduced_image(pixels, layout, picture.FULL)
            full = Image.fromarray(picture.to_grey(values, stretch, asinh), mode="L")
            return PreviewResult(_pictures(full, picture.thumbnail(full)), kind=kind)
        if found.spectra:
            index, _header = found.spectra[0]
            values = np.asarray(hdulist[index].section[...], dtype=np.float64).ravel()
            full = spectrum.plot(values, spectrum.FULL_SIZE)
            thumb = spectrum.plot(values, spectrum.THUMB_SIZE)
            return PreviewResult(_pictures(full, thumb), kind="spectrum")
    except LayoutError as exc:
        raise PreviewError(f"{label}: {exc}") from exc
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise PreviewError(f"{label}: cannot read its pixels: {exc}") from exc
    if found.tables:
        return PreviewResult(note=f"tables only ({found.tables} table HDUs), no image data")
    if found.tiny:
        return PreviewResult(note="no image larger than one pixel")
    return PreviewResult(note="header only, no image data")


def make_previews(
    local: Path,
    label: str,
    *,
    workdir: Path,
    limit: int,
    stretch: str = "zscale",
    asinh: bool = False,
) -> PreviewResult:
    """The previews of the FITS file at ``local`` (compressed or not).

    ``workdir``: where a compressed file's data is decompressed to; ``limit``: the most it may
    decompress to. Raises PreviewError when the file cannot be drawn.
    """
    with uncompressed(local, workdir, limit, label) as path, open_fits(path, label) as hdulist:
        pixels = Pixels(path, hdulist)
        try:
            return draw(pixels, label, stretch, asinh)
        finally:
            pixels.close()
