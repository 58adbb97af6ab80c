"""The descriptor layer on real files: astroscrappy's GMOS-S frame and astropy's test files.

Expected values are read by hand from the files' headers (comments give the cards).
"""

from __future__ import annotations

from datetime import datetime, time

import pytest
from astropy.io import fits

from fits_storage.descriptors import describe, mapping_for
from fits_storage.descriptors.frame import FALLBACK, card_index, card_value, parse_card_image
from fits_storage.descriptors.generic import GENERIC
from fits_storage.descriptors.gmos import GMOS
from tests.fitsdata import astropy_data_dir, astropy_fits_names, gmos_source


def headers_of(path) -> list[fits.Header]:
    with fits.open(path) as hdulist:
        return [hdu.header.copy() for hdu in hdulist]


def test_gmos_s_real_file_new_fields() -> None:
    described = describe(headers_of(gmos_source()))
    v = described.values
    # INSTRUME = 'GMOS-S'; OBSERVAT = TELESCOP = 'Gemini-South'
    assert mapping_for("GMOS-S") is GMOS and v["site"] == "Gemini-South"
    # DATE-OBS = '2019-08-08', TIME-OBS = '00:42:27.4' (trusted before UT and UTSTART
    # '00:42:29.7167'); LT = '21:42:26.9'
    assert v["ut_datetime"] == datetime(2019, 8, 8, 0, 42, 27, 400000)
    assert v["local_time"] == time(21, 42, 26, 900000)
    # GRATING = 'R400+_G5325', CENTWAVE = 740. nm; MASKTYP = 1, MASKNAME = '1.0arcsec'
    assert v["disperser"] == "R400+_G5325" and v["central_wavelength"] == pytest.approx(0.74)
    assert v["focal_plane_mask"] == "1.0arcsec"
    assert v["spectroscopy"] is True and v["mode"] == "longslit"
    # 0.74 um is nearest the i band (0.78)
    assert v["wavelength_band"] == "i"
    # AMPINTEG = 11880 on DETTYPE = 'S10892' (Hamamatsu: slow above 8000 ns)
    assert v["detector_readmode"] == "slow"
    # RAWIQ = 'Any', RAWCC = '70-percentile', RAWWV = RAWBG = 'UNKNOWN'
    assert (v["raw_iq"], v["raw_cc"], v["raw_wv"], v["raw_bg"]) == ("100", "70", None, None)
    # AOFOLD = 'park-pos.'; no NODPIX
    assert v["adaptive_optics"] is False and v["laser_guide_star"] is False
    assert v["nod_and_shuffle"] is False and v["coadds"] == 1
    # PREPARE and GEM-TLM present: prepared, not raw; OBSTYPE OBJECT of class partnerCal
    assert v["types"] == "CAL GMOS GMOS_S LS PREPARED SPECT STANDARD"
    assert v["reduction"] == "PREPARED"
    # Mosaicked: no CCDSUM, AMPNAME, DETSEC or GAIN left in its one extension
    assert v["detector_binning"] is None and v["amp_read_area"] is None
    assert v["detector_roi_setting"] is None and v["detector_gain_setting"] is None
    # a prepared frame lacks amplifier keywords legitimately: only the binning is noted
    assert described.notes == ["CCDSUM: missing (extension 1)"]
    # ELEVATIO = 66.91005, CRPA = 0.49316948972528; TRIMOVER and SUBOVER stamped
    assert v["elevation"] == 66.91005 and v["cass_rotator_pa"] == 0.49316948972528
    assert v["overscan_trimmed"] is True and v["overscan_subtracted"] is True
    assert v["nod_count"] is None and v["nod_pixels"] is None


def test_gmos_s_real_file_roi_once_binning_is_known() -> None:
    """DETRO1X = 1, DETRO1XS = 3072, DETRO1Y = 1625, DETRO1YS = 512 binned 2x2 covers
    rows 1625-2648 of all 6144 columns: the Hamamatsu Central Spectrum."""
    headers = headers_of(gmos_source())
    headers[1]["CCDSUM"] = "2 2"
    v = describe(headers).values
    assert v["detector_binning"] == "2x2"
    assert v["detector_roi_setting"] == "Central Spectrum"
    headers[1]["CCDSUM"] = "1 1"
    assert describe(headers).values["detector_roi_setting"] == "Custom"


@pytest.mark.parametrize("name", astropy_fits_names(include_invalid=False))
def test_astropy_files_take_the_generic_mapping(name: str) -> None:
    path = astropy_data_dir() / name
    try:
        headers = headers_of(path)
    except Exception:  # noqa: BLE001 - a few are not readable by design
        pytest.skip("astropy cannot open it")
    described = describe(headers)
    instrument = described.values["instrument"]
    assert mapping_for(instrument) is GENERIC
    # every column of the mapping is computed, none raises; no Gemini site invented
    assert set(described.values) == set(GENERIC.fields)
    assert described.values["site"] is None
    assert described.values["detector_roi_setting"] is None


def test_astropy_hst_file_values() -> None:
    """test0.fits: an HST WFPC2 file. INSTRUME = 'WFPC2', no TELESCOP, DATE-OBS = '19/05/94'
    (the old dd/mm/yy form: malformed here), EXPTIME = 0.23, FILTER1 = 33, FILTER2 = 0."""
    described = describe(headers_of(astropy_data_dir() / "test0.fits"))
    v = described.values
    assert v["instrument"] == "WFPC2" and v["telescope"] is None
    assert v["exposure_time"] == pytest.approx(0.23)
    assert v["filter_name"] == "33&0"
    assert v["ut_datetime"] is None
    assert "DATE-OBS: malformed date '19/05/94'" in described.notes
    assert v["types"] == "RAW UNPREPARED" and v["reduction"] == "RAW"
    assert v["spectroscopy"] is None and v["mode"] is None


# -- the generic rules' fallbacks ------------------------------------------------------------


def header(**cards: object) -> fits.Header:
    h = fits.Header()
    for key, value in cards.items():
        h[key.replace("_", "-")] = value
    return h


@pytest.mark.parametrize(
    ("cards", "expected", "note"),
    [
        (
            {"DATE_OBS": "2020-02-03T04:05:06.5", "TIME_OBS": "09:00:00"},
            datetime(2020, 2, 3, 4, 5, 6, 500000),
            None,
        ),
        (
            {"DATE_OBS": "2020-02-03", "TIME_OBS": "01:00:00", "UT": "02:00:00"},
            datetime(2020, 2, 3, 1),
            None,
        ),
        (
            {"DATE_OBS": "2020-02-03", "UT": "02:00:00", "UTSTART": "03:00:00"},
            datetime(2020, 2, 3, 2),
            None,
        ),
        ({"DATE_OBS": "2020-02-03", "UTSTART": "03:00:00"}, datetime(2020, 2, 3, 3), None),
        (
            {"DATE_OBS": "2020-02-03", "TIME_OBS": "25:00:00", "UT": "02:00:00"},
            datetime(2020, 2, 3, 2),
            "TIME-OBS: malformed time '25:00:00'",
        ),
        ({"DATE_OBS": "2020-02-03", "MJD_OBS": 58882.5}, datetime(2020, 2, 3, 12), None),
        ({"MJD_OBS": 58882.25}, datetime(2020, 2, 3, 6), None),
        (
            {"DATE_OBS": "2020-02-30", "MJD_OBS": 58882.25},
            datetime(2020, 2, 3, 6),
            "DATE-OBS: malformed date '2020-02-30'",
        ),
        (
            {"DATE_OBS": "2020-02-03"},
            None,
            "TIME-OBS/UT/UTSTART/MJD-OBS: missing; UT date-time left NULL",
        ),
        ({}, None, "DATE-OBS: missing"),
        ({"MJD_OBS": "soon"}, None, "MJD-OBS: expected a number, got 'soon'"),
    ],
)
def test_ut_datetime_keywords_in_order_of_trust(cards, expected, note) -> None:
    described = describe([header(**cards)])
    assert described.values["ut_datetime"] == expected
    if note:
        assert note in described.notes


@pytest.mark.parametrize(
    ("cards", "filename", "expected"),
    [
        ({"OBSERVAT": "Gemini-North", "TELESCOP": "Gemini-South"}, None, "Gemini-North"),
        ({"OBSERVAT": "gemini south"}, None, "Gemini-South"),
        ({"TELESCOP": "Gemini North"}, None, "Gemini-North"),
        ({"ORIGNAME": "S20190808S0048.fits"}, "N20200101S0001.fits", "Gemini-South"),
        ({}, "N20200101S0001.fits.bz2", "Gemini-North"),
        ({"TELESCOP": "HST"}, "test0.fits", None),
    ],
)
def test_site_from_keywords_then_the_file_name(cards, filename, expected) -> None:
    assert describe([header(**cards)], filename).values["site"] == expected


def test_telescope_position_of_a_file_of_no_gemini_instrument_is_optional() -> None:
    described = describe([header(TELESCOP="HST")])
    assert described.values["elevation"] is None and described.values["cass_rotator_pa"] is None
    assert not [n for n in described.notes if n.startswith(("ELEVATIO", "CRPA"))]
    assert describe([header(ELEVATIO=45.5, CRPA=-20.0)]).values["elevation"] == 45.5


def test_gemini_frame_without_a_site_is_noted() -> None:
    described = describe([header(INSTRUME="GMOS-N")])
    assert described.values["site"] is None
    assert "OBSERVAT/TELESCOP/ORIGNAME: no Gemini site" in described.notes


def test_ra_dec_fall_back_to_the_wcs_of_the_first_extension() -> None:
    extension = header(CTYPE1="RA---TAN", CRVAL1=10.5, CTYPE2="DEC--TAN", CRVAL2=-20.25)
    values = describe([header(), extension]).values
    assert (values["ra"], values["dec"]) == (10.5, -20.25)
    described = describe([header(RA="12:30:00", DEC="-95:00:00"), extension])
    assert described.values["ra"] == pytest.approx(187.5)
    assert described.values["dec"] is None  # malformed: no fallback to the WCS
    assert "DEC: '-95:00:00' is outside -90.0..90.0 degrees" in described.notes
    described = describe([header(), header(CTYPE1="PIXEL", CRVAL1=3.0)])
    assert described.values["ra"] is None and "RA: missing" in described.notes


def test_sky_conditions_normalised_to_percentiles() -> None:
    described = describe(
        [
            header(
                INSTRUME="GMOS-S", RAWIQ="20-percentile", RAWCC="Any", RAWWV="UNKNOWN", RAWBG="dark"
            )
        ]
    )
    v = described.values
    assert (v["raw_iq"], v["raw_cc"], v["raw_wv"], v["raw_bg"]) == ("20", "100", None, None)
    assert "RAWBG: expected 'NN-percentile' or 'Any', got 'dark'" in described.notes


@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_a_bad_card_is_a_note_not_an_exception() -> None:
    h = header(INSTRUME="GMOS-N")
    h.append(fits.Card.fromstring("EXPTIME = NaN"))
    described = describe([h])
    assert described.values["exposure_time"] is None
    assert any(n.startswith("EXPTIME: ") for n in described.notes)


CARD_FORMS = [
    "INSTRUME= 'GMOS-S  '           / Instrument used to acquire data",
    "GRATING = '32/mmSB_G5533'      / a slash inside the string",
    "OBJECT  = 'O''Brien''s star'   / doubled quotes",
    "OBJECT  = ''                   / empty string",
    "OBJECT  = '   '",
    "OBJECT  = '  leading'",
    "EXPTIME =                  90. / Exposure time in seconds",
    "EXPTIME =              1.5D+02 / Fortran exponent",
    "EXPTIME =               -1E-03",
    "EXPTIME =                 +.5",
    "COADDS  =                   16 / integer",
    "COADDS  =                  -16",
    "PREIMAGE=                    F / MOS pre-imaging",
    "SIMPLE  =                    T",
    "EXPTIME =                      / undefined value",
    "EXPTIME = (1.0, 2.0)           / complex",
    "OBJECT  = 'a long string that goes on &'",
]


@pytest.mark.parametrize("image", CARD_FORMS)
@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_card_values_read_as_astropy_reads_them(image: str) -> None:
    image = image.ljust(80)
    mine = parse_card_image(image)
    theirs = fits.Card.fromstring(image).value
    if mine is FALLBACK:
        return  # left to astropy
    assert type(mine) is type(theirs) and mine == theirs, (mine, theirs)
    header = fits.Header.fromstring(image + "END".ljust(80))
    keyword = image[:8].strip()
    assert card_value(card_index(header), keyword) == theirs


def test_fast_and_astropy_reading_agree_on_the_real_gmos_file() -> None:
    """Every card of the real file read both ways gives the same value."""
    fresh = [fits.Header.fromstring(h.tostring()) for h in headers_of(gmos_source())]
    compared = 0
    for header in fresh:
        for keyword in {k for k in header.keys() if k not in ("COMMENT", "HISTORY", "")}:
            mine = card_value(card_index(header), keyword)
            if mine is not FALLBACK:
                assert mine == header[keyword], keyword
                compared += 1
    assert compared > 150


def test_every_mapping_computes_exactly_the_header_columns() -> None:
    """A column added to ``header`` needs its field, and a mapping cannot invent one."""
    from fits_storage.descriptors import MAPPINGS
    from fits_storage.descriptors.mapping import Constant
    from fits_storage.orm import Header

    columns = {c.name for c in Header.__table__.columns} - {"id", "diskfile_id", "notes"}
    for mapping in (GENERIC, *MAPPINGS):
        assert set(mapping.fields) == columns, mapping.name
    with pytest.raises(KeyError, match="not a field of generic"):
        GENERIC.extend("X", ("X",), fields={"colour": Constant("blue")})
