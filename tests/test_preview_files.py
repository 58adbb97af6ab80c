"""Pictures of real and awkward files, without a database: astropy's test images, the real
GMOS-S frame (its SCI extension only), a 1-D spectrum, tables and header-only files (a note,
not a failure), NaN/Inf/constant images, compressed files, and broken files (a clear error)."""

from __future__ import annotations

import bz2
import io
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from fits_storage.preview import PreviewError, PreviewResult, make_previews
from fits_storage.queues import PermanentError
from tests.fitsdata import (
    copy_astropy_file,
    copy_gmos_file,
    make_gmos_n_frame,
    write_not_fits,
    write_truncated,
)

LIMIT = 1 << 30


def previews(path: Path, tmp_path: Path, **options: object) -> PreviewResult:
    return make_previews(path, path.name, workdir=tmp_path / "work", limit=LIMIT, **options)


def opened(result: PreviewResult) -> list[Image.Image]:
    """Each JPEG opened by Pillow, checked against the size the result states."""
    images = []
    for picture, bound in zip(result.pictures, (1024, 256), strict=True):
        image = Image.open(io.BytesIO(picture.jpeg))
        assert image.format == "JPEG" and image.mode == "L"
        assert image.size == (picture.width, picture.height)
        assert max(image.size) <= bound
        images.append(image)
    return images


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("test0.fits", "4 extensions side by side"),  # HST, 4 SCI extensions
        ("o4sp040b0_raw.fits", "2 extensions side by side"),  # HST STIS raw, BZERO
        ("comp.fits", "image"),  # tile-compressed
        ("scale.fits", "image"),  # BSCALE/BZERO
        ("fixed-1890.fits", "image"),  # every pixel 1890: a flat grey picture
        ("arange.fits", "image"),
    ],
)
def test_astropy_images_give_a_picture(name: str, kind: str, tmp_path: Path) -> None:
    result = previews(copy_astropy_file(name, tmp_path), tmp_path)
    assert result.kind == kind and result.note is None
    full, thumb = opened(result)
    grey = np.asarray(full)
    if name == "fixed-1890.fits":
        assert np.abs(grey.astype(int) - 128).max() <= 2
    else:
        assert grey.std() > 0  # a picture, not a flat field


def test_the_real_gmos_s_frame_shows_its_sci_extension(tmp_path: Path) -> None:
    result = previews(copy_gmos_file(tmp_path), tmp_path)
    full, _thumb = opened(result)
    assert result.kind == "image"
    assert full.size == (200, 150)  # SCI alone; VAR and SKYFIT are not drawn beside it


def test_a_one_dimensional_spectrum_gets_a_line_plot(tmp_path: Path) -> None:
    wavelength = np.arange(3000)
    flux = 100 + 0.01 * wavelength + 900 * np.exp(-0.5 * ((wavelength - 2000) / 3.0) ** 2)
    path = tmp_path / "N20251123S0200.fits"
    fits.PrimaryHDU(flux.astype(np.float32)).writeto(path)
    result = previews(path, tmp_path)
    full, thumb = opened(result)
    assert result.kind == "spectrum" and full.size == (1024, 512) and thumb.size == (256, 128)
    grey = np.asarray(full)
    line = round(2000 / 3000 * 1023)
    top_of = [np.flatnonzero(grey[:, x] < 128).min() for x in (line, 200, 800)]
    assert top_of[0] < 60 < top_of[1] and top_of[2] > 60  # the emission line stands out


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("btable.fits", "tables only (1 table HDUs), no image data"),
        ("zerowidth.fits", "tables only (5 table HDUs), no image data"),
        ("history_header.fits", "header only, no image data"),
        ("verify.fits", "header only, no image data"),
    ],
)
def test_tables_and_header_only_files_get_a_note(name: str, note: str, tmp_path: Path) -> None:
    result = previews(copy_astropy_file(name, tmp_path), tmp_path)
    assert result.pictures == () and result.note == note


@pytest.mark.parametrize("fill", ["nan", "inf", "constant", "all-nan"])
def test_nan_inf_and_constant_images_give_a_valid_picture(fill: str, tmp_path: Path) -> None:
    data = np.random.default_rng(1).normal(100, 5, size=(300, 400)).astype(np.float32)
    if fill == "nan":
        data[100:200, :] = np.nan
    elif fill == "inf":
        data[::7, ::5] = np.inf
        data[::11, ::3] = -np.inf
    elif fill == "constant":
        data[:] = 42
    else:
        data[:] = np.nan
    path = tmp_path / "S20251123S0001.fits"
    fits.PrimaryHDU(data).writeto(path)
    full, _thumb = opened(previews(path, tmp_path))
    grey = np.asarray(full, dtype=float)[::-1]
    if fill == "nan":
        assert grey[120:180].mean() < 10 and grey[:80].mean() > 60
    elif fill == "constant":
        assert np.abs(grey - 128).max() <= 2
    elif fill == "all-nan":
        assert grey.max() <= 2


def test_a_bz2_file_gives_the_same_picture_as_its_data(tmp_path: Path) -> None:
    plain = make_gmos_n_frame(tmp_path / "plain", 2, rows=1024)
    packed = tmp_path / "packed" / (plain.name + ".bz2")
    packed.parent.mkdir()
    packed.write_bytes(bz2.compress(plain.read_bytes()))
    a, b = previews(plain, tmp_path), previews(packed, tmp_path)
    assert [p.jpeg for p in a.pictures] == [p.jpeg for p in b.pictures]
    assert not list((tmp_path / "work").rglob("*.fits"))  # the decompressed copy is gone


def test_a_bz2_file_that_expands_past_the_limit_is_refused(tmp_path: Path) -> None:
    plain = make_gmos_n_frame(tmp_path, 2, rows=1024)
    packed = tmp_path / (plain.name + ".bz2")
    packed.write_bytes(bz2.compress(plain.read_bytes()))
    with pytest.raises(PreviewError, match="decompresses to more than 1000000 bytes"):
        make_previews(packed, packed.name, workdir=tmp_path / "work", limit=1_000_000)


def test_a_truncated_file_fails_with_a_clear_reason(tmp_path: Path) -> None:
    good = make_gmos_n_frame(tmp_path / "good", 2, rows=512)
    path = write_truncated(tmp_path / good.name, good, missing_bytes=50_000)
    with pytest.raises(PreviewError, match=r"truncated: \d+ bytes, but its headers describe"):
        previews(path, tmp_path)
    assert issubclass(PreviewError, PermanentError)  # the queue fails the entry, no retries


def test_a_file_that_is_not_fits_fails_with_a_clear_reason(tmp_path: Path) -> None:
    path = write_not_fits(tmp_path / "N20251123S0003.fits")
    with pytest.raises(PreviewError, match="not a readable FITS file"):
        previews(path, tmp_path)


def test_asinh_and_percentile_stretches(tmp_path: Path) -> None:
    path = copy_astropy_file("o4sp040b0_raw.fits", tmp_path)
    plain = opened(previews(path, tmp_path))[0]
    soft = opened(previews(path, tmp_path, stretch="percentile", asinh=True))[0]
    assert plain.size == soft.size
    assert np.asarray(plain).tobytes() != np.asarray(soft).tobytes()
