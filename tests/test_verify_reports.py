"""astropy's report speaks of the file only: a warning of some other object is not its own."""

from __future__ import annotations

import warnings
from pathlib import Path

from astropy.io import fits

from fits_storage.ingest.verify import astropy_report
from tests.fitsdata import copy_astropy_file


class _FinalisedDuringVerify(fits.HDUList):
    """As when the garbage collector finalises an unclosed connection in the middle of the
    verification: a ResourceWarning is given while the report is being made."""

    def verify(self, option: str = "warn") -> None:
        warnings.warn("unclosed connection <psycopg.Connection>", ResourceWarning, stacklevel=1)
        super().verify(option)


def test_a_resource_warning_of_another_object_does_not_fail_the_file(tmp_path: Path) -> None:
    path = copy_astropy_file("test0.fits", tmp_path)
    with fits.open(path) as opened:
        report = astropy_report(_FinalisedDuringVerify(list(opened)))
    assert report.ok and report.text == ""
    bad = copy_astropy_file("checksum_false.fits", tmp_path)
    with fits.open(bad, checksum=False) as opened:
        report = astropy_report(_FinalisedDuringVerify(list(opened)))
    assert not report.ok and "CHECKSUM does not match" in report.text
