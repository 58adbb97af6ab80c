"""Header extraction, digests and verification reports: no database needed."""

from __future__ import annotations

import bz2
import gzip
import hashlib
from datetime import datetime
from pathlib import Path

import pytest
from astropy.io import fits

from fits_storage.ingest.digest import digest_file
from fits_storage.ingest.fitsheader import (
    extract_header_fields,
    parse_sexagesimal,
    program_flags,
    qa_state,
)
from fits_storage.ingest.verify import fitsverify_program, fitsverify_report
from tests.fitsdata import (
    GMOS_HEADER,
    astropy_data_dir,
    copy_astropy_file,
    gmos_source,
    header_value_matches,
    make_observatory_file,
)


def test_gmos_header_values_from_the_real_file() -> None:
    with fits.open(gmos_source()) as hdulist:
        fields = extract_header_fields(hdulist)
    for column, expected in GMOS_HEADER.items():
        assert fields.values[column] == header_value_matches(expected), column
    # The real file has no CCDSUM in its (processed) extensions: NULL with a note.
    assert fields.values["detector_binning"] is None
    assert fields.notes == ["CCDSUM: missing (extension 1)"]


def test_generated_file_header_values(tmp_path: Path) -> None:
    path = make_observatory_file(tmp_path, "S20240102S0007.fits", binning=(2, 4))
    fields = extract_header_fields(fits.getheader(path, i) for i in range(4))
    v = fields.values
    assert v["instrument"] == "GMOS-S" and v["telescope"] == "Gemini-South"
    assert v["program_id"] == "GS-2023B-Q-101"
    assert v["data_label"] == "GS-2023B-Q-101-8-007"
    assert v["ut_datetime"] == datetime(2024, 1, 2, 5, 6, 7, 500000)
    assert v["detector_binning"] == "2x4"
    assert v["filter_name"] == "r_G0303"
    assert v["disperser"] == "MIRROR" and v["central_wavelength"] is None
    assert v["release"] == datetime(2025, 1, 1)
    assert fields.notes == []


def header(**cards: object) -> fits.Header:
    h = fits.Header()
    for key, value in cards.items():
        h[key.replace("_", "-")] = value
    return h


def test_missing_and_malformed_keywords_become_null_with_notes() -> None:
    h = header(
        GEMPRGID="GN-2019B-ENG-12",
        DATE_OBS="2019-13-45",
        RA="not an angle",
        DEC=123.0,
        EXPTIME="long",
        AIRMASS=True,
        RELEASE="soon",
    )
    fields = extract_header_fields([h, header(CCDSUM="two by two")])
    v = fields.values
    for column in ("ut_datetime", "ra", "dec", "exposure_time", "airmass", "release"):
        assert v[column] is None, column
    assert v["detector_binning"] is None and v["instrument"] is None
    text = "\n".join(fields.notes)
    for fragment in (
        "DATE-OBS: malformed date '2019-13-45'",
        "RA: malformed sexagesimal value 'not an angle'",
        "DEC: 123.0 is outside -90.0..90.0 degrees",
        "EXPTIME: expected a number",
        "AIRMASS: expected a number, got True",
        "RELEASE: malformed date 'soon'",
        "CCDSUM: malformed binning 'two by two' (extension 1)",
        "INSTRUME: missing",
    ):
        assert fragment in text
    assert v["engineering"] is True and v["science_verification"] is False


def test_sexagesimal_and_date_forms() -> None:
    h = header(RA="12:30:00.0", DEC="-45:30:00", DATE_OBS="2020-02-03T04:05:06.5")
    v = extract_header_fields([h]).values
    assert v["ra"] == pytest.approx(187.5)
    assert v["dec"] == pytest.approx(-45.5)
    assert v["ut_datetime"] == datetime(2020, 2, 3, 4, 5, 6, 500000)
    assert parse_sexagesimal("-00 30 00") == pytest.approx(-0.5)
    assert parse_sexagesimal("12:61:00") is None
    h = header(DATE_OBS="2020-02-03", UT="23:59:59.9")
    assert extract_header_fields([h]).values["ut_datetime"] == datetime(
        2020, 2, 3, 23, 59, 59, 900000
    )


def test_qa_state_and_program_flags() -> None:
    assert qa_state("USABLE", "YES") == "Pass"
    assert qa_state("USABLE", "NO") == "Usable"
    assert qa_state("BAD", "YES") == "Fail"
    assert qa_state("CHECK", "YES") == "CHECK"
    assert qa_state("UNKNOWN", "UNKNOWN") == "Undefined"
    assert qa_state(None, None) is None
    assert program_flags("GS-2019B-ENG-1")["engineering"] is True
    assert program_flags("GN-ENG20191231")["engineering"] is True
    assert program_flags("GN-2019A-SV-101")["science_verification"] is True
    assert program_flags("GS-CAL20190808")["calibration_program"] is True
    assert program_flags("GS-2019B-Q-305") == {
        "engineering": False,
        "science_verification": False,
        "calibration_program": False,
    }
    assert program_flags(None)["engineering"] is None


def test_filters_drop_open_positions() -> None:
    assert (
        extract_header_fields([header(FILTER1="open1-6", FILTER2="open2-8")]).values["filter_name"]
        == "open"
    )
    assert (
        extract_header_fields([header(FILTER1="g_G0301", FILTER2="GG455_G0305")]).values[
            "filter_name"
        ]
        == "g_G0301&GG455_G0305"
    )


def test_over_long_values_are_truncated_with_a_note() -> None:
    fields = extract_header_fields([header(OBJECT="x" * 68, TELESCOP="y" * 60)])
    assert fields.values["telescope"] == "y" * 40
    assert "telescope: value longer than 40 characters, truncated" in fields.notes


@pytest.mark.parametrize("kind", ["plain", "bz2", "gz"])
def test_digest_of_stored_bytes_and_of_data(tmp_path: Path, kind: str) -> None:
    plain = make_observatory_file(tmp_path, "N20251123S0001.fits", shape=(512, 512))
    data = plain.read_bytes()
    if kind == "bz2":
        path = tmp_path / "N20251123S0001.fits.bz2"
        path.write_bytes(bz2.compress(data))
    elif kind == "gz":
        path = tmp_path / "N20251123S0001.fits.gz"
        path.write_bytes(gzip.compress(data))
    else:
        path = plain
    digest = digest_file(path, None if kind == "plain" else kind)
    stored = path.read_bytes()
    assert digest.file_size == len(stored)
    assert digest.file_md5 == hashlib.md5(stored).hexdigest()
    assert digest.data_size == len(data)
    assert digest.data_md5 == hashlib.md5(data).hexdigest()
    assert digest.compressed is (kind != "plain")


@pytest.mark.skipif(
    fitsverify_program() is None,
    reason="fitsverify not installed (Debian package 'fitsverify'); CI installs it",
)
def test_fitsverify_report_one_file_per_call(tmp_path: Path) -> None:
    good = fitsverify_report(copy_astropy_file("test0.fits", tmp_path))
    assert good is not None and good.ok
    assert "0 error(s)" in good.text
    bad = fitsverify_report(copy_astropy_file("verify.fits", tmp_path))
    assert bad is not None and not bad.ok
    assert "Fatal Error" in bad.text or "error" in bad.text.lower()


def test_fitsverify_that_cannot_run_is_reported_not_raised(tmp_path: Path) -> None:
    path = copy_astropy_file("test0.fits", tmp_path)
    report = fitsverify_report(path, program=str(tmp_path / "no-such-fitsverify"))
    assert report is not None and not report.ok
    assert report.text.startswith("fitsverify could not run: ")


def test_astropy_data_is_found() -> None:
    assert (astropy_data_dir() / "test0.fits").is_file()
    assert gmos_source().is_file()
