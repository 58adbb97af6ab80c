"""The streaming FITS structure check (the archive's door and ``ingest_uploaded_file``) against
the DHS completeness check, on every FITS file astropy ships (the deliberately broken ones too),
plain and compressed, fed in awkward pieces."""

from __future__ import annotations

import bz2
import gzip

import pytest

from fits_storage.dhs.fitscheck import NotCompleteFits, check_complete_fits
from fits_storage.upload.fitsstream import ExpandsTooFar, NotFits, checker_for
from tests.fitsdata import astropy_data_dir, astropy_fits_names, fits_bytes


def verdict(filename: str, data: bytes, piece: int = 1001, limit: int = 1 << 30) -> str | None:
    check = checker_for(filename, limit)
    try:
        for start in range(0, len(data), piece):
            check.feed(data[start : start + piece])
        check.finish()
    except NotFits as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", astropy_fits_names())
def test_agrees_with_the_dhs_check_on_astropys_files(name: str) -> None:
    path = astropy_data_dir() / name
    try:
        check_complete_fits(path)
        complete = True
    except NotCompleteFits:
        complete = False
    data = path.read_bytes()
    for filename, body in (
        ("f.fits", data),
        ("f.fits.bz2", bz2.compress(data)),
        ("f.fits.gz", gzip.compress(data)),
    ):
        assert (verdict(filename, body) is None) == complete, (filename, verdict(filename, body))


def test_a_compressed_file_stops_at_the_ceiling() -> None:
    bomb = bz2.compress(fits_bytes(bytes(64 << 20)))
    check = checker_for("x.fits.bz2", 1 << 20)
    with pytest.raises(ExpandsTooFar):
        check.feed(bomb)
    assert check.expanded <= (1 << 20) + (1 << 20)  # at most one piece past the ceiling


def test_a_compressed_file_can_be_read_only_to_its_first_header() -> None:
    check = checker_for("x.fits.bz2", 1 << 30, first_header_only=True)
    check.feed(bz2.compress(fits_bytes(bytes(64 << 20))))
    check.finish()
    assert check.hdus == 1 and check.expanded <= 1 << 20
