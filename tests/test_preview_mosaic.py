"""The assembled picture of a raw GMOS-N frame (3 chips x 4 amplifiers, binned 1x1 and 2x2),
checked by pixel statistics in known regions: each chip where DETSEC puts it, amplifier levels
that agree after overscan removal and gain, and the gaps between chips (and none between the
amplifiers of one chip). Checked on the reduced values (electrons) and on the JPEG itself."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fits_storage.preview import make_previews
from fits_storage.preview.layout import CHIP_GAP
from fits_storage.preview.make import layout_of, reduced_image
from fits_storage.preview.picture import FULL
from fits_storage.preview.reader import Pixels, contents, open_fits
from fits_storage.preview.reduce import block_factor
from tests.fitsdata import (
    GMOS_N_AMP_WIDTH,
    GMOS_N_CHIP,
    GMOS_N_SKY,
    GMOS_N_STAR,
    GMOS_N_STAR_ROWS,
    GMOS_N_STAR_X,
    make_gmos_n_frame,
)

CHIP_WIDTH, ROWS = GMOS_N_CHIP


@pytest.fixture(scope="module", params=[1, 2], ids=["1x1", "2x2"])
def frame(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    binning = request.param
    path = make_gmos_n_frame(tmp_path_factory.mktemp(f"gmos{binning}"), binning)
    with open_fits(path, "gmos") as hdulist:
        layout, kind = layout_of(contents(hdulist).images)
        pixels = Pixels(path, hdulist)
        values = reduced_image(pixels, layout, FULL)
        pixels.close()
    assert kind == "mosaic of 12 amplifiers"
    factor = block_factor(layout.width, layout.height, FULL)
    return path, binning, factor, values


def to_picture(x_unbinned: float, binning: int, factor: int) -> int:
    """Column (or row) of the reduced picture holding an unbinned mosaic coordinate."""
    return int(x_unbinned // binning // factor)


def chip_x(chip: int) -> int:
    """Unbinned mosaic column where ``chip`` starts: its DETSEC plus the gaps to its left."""
    return chip * (CHIP_WIDTH + CHIP_GAP)


def test_the_picture_has_the_mosaic_size(frame: tuple) -> None:
    _path, binning, factor, values = frame
    width = (3 * CHIP_WIDTH + 2 * CHIP_GAP) // binning
    assert values.shape == (-(-ROWS // binning // factor), -(-width // factor))
    assert max(values.shape) <= FULL


def test_each_chip_lands_where_detsec_says(frame: tuple) -> None:
    _path, binning, factor, values = frame
    bright = values > GMOS_N_SKY + GMOS_N_STAR / 2
    for chip, (y0, y1) in enumerate(GMOS_N_STAR_ROWS):
        x0, x1 = chip_x(chip) + GMOS_N_STAR_X[0], chip_x(chip) + GMOS_N_STAR_X[1]
        columns = np.flatnonzero(bright[to_picture((y0 + y1) / 2, binning, factor)])
        rows = np.flatnonzero(bright[:, to_picture((x0 + x1) / 2, binning, factor)])
        # The block's edges, to within one reduced pixel (a block straddling an edge).
        assert abs(columns[0] - x0 / binning / factor) <= 1
        assert abs(columns[-1] + 1 - x1 / binning / factor) <= 1
        assert abs(rows[0] - y0 / binning / factor) <= 1
        assert abs(rows[-1] + 1 - y1 / binning / factor) <= 1
        middle = values[
            to_picture((y0 + y1) / 2, binning, factor), to_picture((x0 + x1) / 2, binning, factor)
        ]
        assert middle == pytest.approx(GMOS_N_SKY + GMOS_N_STAR, rel=0.01)


def test_amplifier_levels_agree_after_overscan_removal(frame: tuple) -> None:
    _path, binning, factor, values = frame
    levels = []
    for chip in range(3):
        for amp in range(4):
            left = chip_x(chip) + amp * GMOS_N_AMP_WIDTH
            columns = slice(
                to_picture(left + 64, binning, factor),
                to_picture(left + GMOS_N_AMP_WIDTH - 64, binning, factor),
            )
            # Rows clear of every chip's bright block.
            rows = slice(to_picture(3600, binning, factor), to_picture(4100, binning, factor))
            levels.append(float(np.mean(values[rows, columns])))
    assert levels == pytest.approx([GMOS_N_SKY] * 12, abs=2.0)  # electrons; biases differ by 73+


def test_gaps_between_chips_and_none_between_amplifiers(frame: tuple) -> None:
    _path, binning, factor, values = frame
    empty = np.flatnonzero(np.isnan(values).all(axis=0))
    expected = set()
    for chip in (1, 2):
        start, stop = chip_x(chip) - CHIP_GAP, chip_x(chip)
        first = -(-(start // binning) // factor)  # the first column wholly in the gap
        last = (stop // binning) // factor  # columns before this one may be wholly in the gap
        expected |= set(range(first, last))
    assert set(empty) == expected and len(expected) >= 4
    # Inside a chip every column holds sky, across the amplifier boundaries too.
    for chip in range(3):
        inside = values[:, to_picture(chip_x(chip), binning, factor) + 1 :][
            :, : to_picture(CHIP_WIDTH, binning, factor) - 2
        ]
        assert np.isfinite(inside).all()
        assert np.median(inside, axis=0) == pytest.approx(GMOS_N_SKY, abs=3.0)


def test_the_jpeg_shows_sky_gaps_and_stars(frame: tuple, tmp_path: Path) -> None:
    path, binning, factor, values = frame
    result = make_previews(path, "gmos", workdir=tmp_path, limit=1 << 30)
    full, thumb = (Image.open(io.BytesIO(p.jpeg)) for p in result.pictures)
    stated = result.pictures[0]
    assert full.size == (values.shape[1], values.shape[0]) == (stated.width, stated.height)
    assert max(thumb.size) == 256 and thumb.mode == full.mode == "L"
    grey = np.asarray(full, dtype=float)[::-1]  # FITS orientation: row 0 at the bottom
    sky_rows = slice(to_picture(3600, binning, factor), to_picture(4100, binning, factor))
    for chip in range(3):
        centre = to_picture(chip_x(chip) + CHIP_WIDTH / 2, binning, factor)
        assert 60 < grey[sky_rows, centre].mean() < 200  # sky: mid-grey, not black or white
        y = to_picture(sum(GMOS_N_STAR_ROWS[chip]) / 2, binning, factor)
        x = to_picture(chip_x(chip) + sum(GMOS_N_STAR_X) / 2, binning, factor)
        assert grey[y, x] > 240  # the bright block
    for chip in (1, 2):
        gap = to_picture(chip_x(chip) - CHIP_GAP / 2, binning, factor)
        assert grey[:, gap].mean() < 12  # black, give or take JPEG ringing
