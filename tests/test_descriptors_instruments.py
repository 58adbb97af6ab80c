"""Each instrument's mapping on generated raw headers (tests/fitsdata.py), values checked by
hand, and each fallback exercised: a missing keyword falls back to the next, a malformed one
leaves NULL (or the next keyword) with a note."""

from __future__ import annotations

from datetime import datetime, time

import pytest
from astropy.io import fits

from fits_storage.descriptors import describe, mapping_for
from tests.fitsdata import (
    INSTRUMENT_FRAMES,
    f2_frame,
    ghost_frame,
    gmos_frame,
    gnirs_frame,
    gsaoi_frame,
    igrins2_frame,
    niri_frame,
)

UT = datetime(2025, 11, 23, 5, 6, 7, 500000)  # the generators' DATE-OBS + TIME-OBS


def fields(hdulist: fits.HDUList, filename: str | None = None) -> tuple[dict, list[str]]:
    """The frame's fields as ingest computes them: from headers parsed from their bytes."""
    headers = [fits.Header.fromstring(hdu.header.tostring()) for hdu in hdulist]
    described = describe(headers, filename)
    return described.values, described.notes


@pytest.mark.parametrize("instrument", sorted(INSTRUMENT_FRAMES))
def test_every_instrument_has_its_mapping_and_a_clean_raw_frame(instrument: str) -> None:
    values, notes = fields(INSTRUMENT_FRAMES[instrument]())
    assert mapping_for(instrument).name != "generic"
    assert values["instrument"] == instrument
    assert values["ut_datetime"] == UT
    assert values["reduction"] == "RAW"
    assert values["site"] == (
        "Gemini-North" if instrument in ("GMOS-N", "GNIRS", "NIRI", "IGRINS-2") else "Gemini-South"
    )
    assert values["types"].split() == sorted(values["types"].split())
    assert notes == []


# -- GMOS ----------------------------------------------------------------------------------


def test_gmos_n_imaging_full_frame() -> None:
    values, _ = fields(gmos_frame("N20251123S0101.fits"))
    assert values["detector_binning"] == "2x2"
    assert values["detector_roi_setting"] == "Full Frame"  # DETRO1X 1, XS 3072 x2, Y 1, YS 2112 x2
    assert values["detector_readmode"] == "slow"  # AMPINTEG 11880 > 8000 (S10892-N)
    assert values["detector_gain_setting"] == "low"  # GAIN 1.9 < 3
    assert values["filter_name"] == "r_G0303" and values["wavelength_band"] == "r"
    assert values["focal_plane_mask"] == "Imaging"  # MASKNAME 'None'
    assert values["disperser"] == "MIRROR" and values["central_wavelength"] is None
    assert values["local_time"] == time(19, 6, 7, 500000)  # LT, HST = UT - 10 h
    assert (values["raw_iq"], values["raw_cc"], values["raw_wv"], values["raw_bg"]) == (
        "70",
        "50",
        "100",
        "80",
    )
    assert values["types"] == "GMOS GMOS_N IMAGE RAW SCIENCE UNPREPARED"
    assert (values["mode"], values["spectroscopy"], values["nod_and_shuffle"]) == (
        "imaging",
        False,
        False,
    )
    assert values["amp_read_area"].count("+") == 11  # 12 amplifiers read


def test_gmos_s_longslit_flat_central_spectrum_fast_high() -> None:
    frame = gmos_frame(
        "S20251123S0102.fits",
        obstype="FLAT",
        obsclass="partnerCal",
        grating="B600+_G5323",
        central_wavelength_nm=520.0,
        roi="Central Spectrum",
        binning=(1, 2),
        read_speed="fast",
        gain="high",
    )
    values, notes = fields(frame)
    # DETRO1Y 1625, DETRO1YS 512 binned by 2: rows 1625-2648 of all 6144 columns
    assert values["detector_roi_setting"] == "Central Spectrum"
    assert values["detector_binning"] == "1x2"
    assert values["detector_readmode"] == "fast"  # AMPINTEG 5000 <= 8000
    assert values["detector_gain_setting"] == "high"  # GAIN 5.2 >= 3
    assert values["central_wavelength"] == pytest.approx(0.52)  # CENTWAVE 520 nm
    assert values["wavelength_band"] == "g"  # 0.52 is nearest g (0.475)
    assert values["focal_plane_mask"] == "1.0arcsec"
    assert values["types"] == "CAL FLAT GCALFLAT GMOS GMOS_S LS RAW SPECT UNPREPARED"
    assert values["mode"] == "longslit" and values["spectroscopy"] is True
    assert notes == []


def test_gmos_central_stamp_amp_read_area() -> None:
    values, _ = fields(gmos_frame("S20251123S0103.fits", roi="Central Stamp"))
    # DETRO1X 2923, XS 150 x2, DETRO1Y 1987, YS 150 x2: read by amplifiers 2 and 3 of chip 2
    assert values["detector_roi_setting"] == "Central Stamp"
    assert values["amp_read_area"] == (
        "'BI11-33-4k-1, 2':[2923:3072,1987:2286]+'BI11-33-4k-1, 3':[3073:3222,1987:2286]"
    )


def test_gmos_bias_mos_ifu_and_nod_and_shuffle_tags() -> None:
    bias, _ = fields(
        gmos_frame("N20251123S0104.fits", obstype="BIAS", obsclass="dayCal", exptime=0.0)
    )
    assert bias["types"] == "BIAS CAL GMOS GMOS_N RAW UNPREPARED"
    assert bias["mode"] is None and bias["spectroscopy"] is False
    mos, _ = fields(
        gmos_frame(
            "N20251123S0105.fits",
            grating="R400+_G5305",
            maskname="GN2025BQ101-01",
            nod_and_shuffle=True,
        )
    )
    assert {"MOS", "SPECT", "NODANDSHUFFLE"} <= set(mos["types"].split())
    assert mos["mode"] == "MOS" and mos["nod_and_shuffle"] is True
    ifu, _ = fields(gmos_frame("N20251123S0106.fits", grating="R400+_G5305", maskname="IFU-2"))
    assert ifu["mode"] == "IFU"
    twilight, _ = fields(gmos_frame("N20251123S0107.fits", obj="Twilight", obsclass="dayCal"))
    assert {"TWILIGHT", "FLAT", "CAL", "IMAGE"} <= set(twilight["types"].split())
    assert "SCIENCE" not in twilight["types"].split()


def test_gmos_roi_falls_back_to_detsec_then_null() -> None:
    no_detro = {k: None for k in ("DETRO1X", "DETRO1XS", "DETRO1Y", "DETRO1YS")}
    frame = gmos_frame("S20251123S0108.fits", roi="Central Stamp", keywords=no_detro)
    values, notes = fields(frame)
    assert values["detector_roi_setting"] == "Central Stamp"  # from the DETSEC union
    assert notes == []
    frame = gmos_frame(
        "S20251123S0108.fits", keywords=no_detro, extension_keywords={"DETSEC": None}
    )
    values, notes = fields(frame)
    assert values["detector_roi_setting"] is None and values["amp_read_area"] is None
    assert "DETRO1X/DETSEC: missing; ROI left NULL" in notes
    assert "AMPNAME/DETSEC: missing (extensions)" in notes
    # a custom ROI
    frame = gmos_frame("S20251123S0108.fits", keywords={"DETRO1YS": 100})
    assert fields(frame)[0]["detector_roi_setting"] == "Custom"


def test_gmos_malformed_detro_and_ccdsum_are_noted() -> None:
    frame = gmos_frame(
        "S20251123S0109.fits",
        keywords={"DETRO1XS": "wide"},
        extension_keywords={"CCDSUM": "two by two"},
    )
    values, notes = fields(frame)
    assert values["detector_binning"] is None
    assert "CCDSUM: malformed binning 'two by two' (extension 1)" in notes
    detro = "DETRO1X/DETRO1XS/DETRO1Y/DETRO1YS: incomplete or malformed"
    assert any(n.startswith(detro) for n in notes)


def test_gmos_binning_falls_back_to_the_primary_header() -> None:
    frame = gmos_frame(
        "S20251123S0110.fits", keywords={"CCDSUM": "4 4"}, extension_keywords={"CCDSUM": None}
    )
    values, notes = fields(frame)
    assert values["detector_binning"] == "4x4" and notes == []


def test_gmos_central_wavelength_falls_back_to_grwlen() -> None:
    frame = gmos_frame(
        "S20251123S0111.fits",
        grating="R400+_G5325",
        central_wavelength_nm=700.0,
        keywords={"CENTWAVE": None},
    )
    values, notes = fields(frame)
    assert values["central_wavelength"] == pytest.approx(0.7) and notes == []
    frame = gmos_frame("S20251123S0111.fits", grating="R400+_G5325", keywords={"CENTWAVE": "red"})
    values, notes = fields(frame)
    assert values["central_wavelength"] == pytest.approx(0.52)  # GRWLEN 520 nm, next in trust
    assert "CENTWAVE: expected a number, got 'red'" in notes


def test_gmos_gain_setting_from_gainset_once_prepared_and_one_odd_amplifier() -> None:
    frame = gmos_frame("S20251123S0112.fits", prepared=True, extension_keywords={"GAINSET": "high"})
    values, _ = fields(frame)
    assert values["detector_gain_setting"] == "high" and values["reduction"] == "PREPARED"
    frame = gmos_frame("S20251123S0112.fits")
    frame[3].header["GAIN"] = 6.0  # one amplifier disagrees: allowed
    assert fields(frame)[0]["detector_gain_setting"] == "low"
    frame[4].header["GAIN"] = 6.0  # two disagree: no single setting
    assert fields(frame)[0]["detector_gain_setting"] is None


def test_gmos_read_speed_on_eev_and_missing_keywords() -> None:
    frame = gmos_frame("S20251123S0113.fits", keywords={"DETTYPE": "SDSU II CCD", "AMPINTEG": 5000})
    assert fields(frame)[0]["detector_readmode"] == "slow"  # EEV: slow above 2000 ns
    values, notes = fields(gmos_frame("S20251123S0113.fits", keywords={"AMPINTEG": None}))
    assert values["detector_readmode"] is None and "AMPINTEG: missing" in notes


def test_gmos_nod_count_and_pixels_of_nod_and_shuffle_frames() -> None:
    values, notes = fields(gmos_frame("S20251123S0114.fits", nod_and_shuffle=True))
    # NODPIX 1536, ANODCNT 4, BNODCNT 4: FitsStorage keeps the A count
    assert (values["nod_count"], values["nod_pixels"]) == (4, 1536) and notes == []
    values, notes = fields(gmos_frame("S20251123S0114.fits"))
    assert (values["nod_count"], values["nod_pixels"]) == (None, None) and notes == []
    # not nod-and-shuffle (no NODPIX): stray counts are not read
    values, _ = fields(gmos_frame("S20251123S0114.fits", keywords={"ANODCNT": 4}))
    assert values["nod_count"] is None


def test_gmos_nod_count_needs_both_counts_and_whole_numbers() -> None:
    frame = gmos_frame("S20251123S0115.fits", nod_and_shuffle=True, keywords={"BNODCNT": None})
    values, notes = fields(frame)
    assert values["nod_count"] is None and values["nod_pixels"] == 1536
    assert "BNODCNT: missing; nod count left NULL" in notes
    frame = gmos_frame("S20251123S0115.fits", nod_and_shuffle=True, keywords={"ANODCNT": "four"})
    values, notes = fields(frame)
    assert values["nod_count"] is None
    assert "ANODCNT/BNODCNT: expected a number, got 'four'; nod count left NULL" in notes
    frame = gmos_frame("S20251123S0115.fits", nod_and_shuffle=True, keywords={"NODPIX": 15.5})
    values, notes = fields(frame)
    assert values["nod_pixels"] is None and values["nod_count"] == 4
    assert "NODPIX: expected a whole number, got 15.5" in notes


def test_gmos_overscan_state_from_the_reduction_software_stamps() -> None:
    values, _ = fields(gmos_frame("S20251123S0116.fits"))
    assert (values["overscan_trimmed"], values["overscan_subtracted"]) == (False, False)
    stamps = {"TRIMOVER": "2025-11-24T10:00:01", "SUBOVER": "2025-11-24T10:00:01"}
    frame = gmos_frame("S20251123S0116.fits", processed="BIAS", keywords=stamps)
    values, notes = fields(frame)
    assert (values["overscan_trimmed"], values["overscan_subtracted"]) == (True, True)
    frame = gmos_frame("S20251123S0116.fits", prepared=True, keywords={"SUBOVER": "yes"})
    values, _ = fields(frame)
    assert (values["overscan_trimmed"], values["overscan_subtracted"]) == (False, True)


def test_elevation_and_rotator_angle_of_every_gemini_frame() -> None:
    for make in INSTRUMENT_FRAMES.values():
        values, _ = fields(make())
        # ELEVATIO 54.12, CRPA -102.5
        assert (values["elevation"], values["cass_rotator_pa"]) == (54.12, -102.5)
    frame = gmos_frame("S20251123S0117.fits", keywords={"ELEVATIO": "54:07:12", "CRPA": 359.5})
    values, notes = fields(frame)
    assert values["elevation"] == pytest.approx(54.12) and values["cass_rotator_pa"] == 359.5
    assert notes == []


def test_elevation_and_rotator_angle_malformed_or_missing_are_noted() -> None:
    frame = gmos_frame("S20251123S0118.fits", keywords={"ELEVATIO": "high", "CRPA": 400.0})
    values, notes = fields(frame)
    assert values["elevation"] is None and values["cass_rotator_pa"] is None
    assert "ELEVATIO: expected a number, got 'high'" in notes
    assert "CRPA: 400.0 is outside -360.0..360.0 degrees" in notes
    frame = gmos_frame("S20251123S0118.fits", keywords={"ELEVATIO": 95.0})
    assert "ELEVATIO: 95.0 is outside -90.0..90.0 degrees" in fields(frame)[1]
    values, notes = fields(gmos_frame("S20251123S0118.fits", keywords={"ELEVATIO": None}))
    assert values["elevation"] is None and "ELEVATIO: missing" in notes
    # a processed frame may have lost it: no note
    frame = gmos_frame("S20251123S0118.fits", processed="BIAS", keywords={"CRPA": None})
    values, notes = fields(frame)
    assert values["cass_rotator_pa"] is None and "CRPA: missing" not in notes


@pytest.mark.parametrize(
    ("processed", "reduction"),
    [
        ("BIAS", "PROCESSED_BIAS"),
        ("FLAT", "PROCESSED_FLAT"),
        ("ARC", "PROCESSED_ARC"),
        ("DARK", "PROCESSED_DARK"),
        ("STANDARD", "PROCESSED_STANDARD"),
        ("SCIENCE", "PROCESSED_SCIENCE"),
    ],
)
def test_gmos_processed_products(processed: str, reduction: str) -> None:
    obstype = processed if processed in ("BIAS", "FLAT", "ARC", "DARK") else "OBJECT"
    values, _ = fields(gmos_frame("N20251123S0114.fits", obstype=obstype, processed=processed))
    assert values["reduction"] == reduction
    tags = set(values["types"].split())
    assert "RAW" not in tags and "PREPARED" in tags
    assert ("PROCESSED" in tags) or reduction == "PROCESSED_SCIENCE"


def test_gmos_mosaicked_science_is_processed_science() -> None:
    frame = gmos_frame("N20251123S0115.fits", prepared=True, keywords={"GMOSAIC": "2025-11-24"})
    assert fields(frame)[0]["reduction"] == "PROCESSED_SCIENCE"


# -- GNIRS ---------------------------------------------------------------------------------


def test_gnirs_longslit_values() -> None:
    values, notes = fields(gnirs_frame())
    assert values["coadds"] == 3 and values["exposure_time"] == 30.0  # EXPTIME 10 per coadd
    assert values["disperser"] == "32/mm_G5533"  # 32/mmSB_G5533, prism MIR
    assert values["focal_plane_mask"] == "0.30arcsec_G5530&SCLong_G5534"
    assert values["central_wavelength"] == pytest.approx(2.2) and values["wavelength_band"] == "K"
    assert values["detector_readmode"] == "Faint Objects"  # LNRS 16, NDAVGS 16
    assert values["detector_welldepth"] == "Shallow"  # DETBIAS 0.3
    assert values["filter_name"] == "K_G0518"  # FILTER1 Open dropped
    assert values["types"] == "GNIRS LS RAW SCIENCE SPECT UNPREPARED"
    assert notes == []


def test_gnirs_xd_imaging_pinholes_and_deep_well() -> None:
    xd, _ = fields(gnirs_frame(prism="SXD_G5536", detbias=0.6, read_mode=(1, 1)))
    assert xd["disperser"] == "32/mm_G5533&SXD_G5536" and "XD" in xd["types"].split()
    assert xd["mode"] is None and xd["spectroscopy"] is True
    assert (xd["detector_welldepth"], xd["detector_readmode"]) == ("Deep", "Very Bright Objects")
    image, _ = fields(gnirs_frame(acquisition_mirror=True, slit="Acquisition_G5507"))
    assert image["disperser"] == "MIRROR" and image["mode"] == "imaging"
    assert image["central_wavelength"] is None
    pinholes, _ = fields(gnirs_frame(obstype="FLAT", slit="LgPinholes_G5530"))
    tags = pinholes["types"].split()
    assert "PINHOLE" in tags and "FLAT" not in tags and "CAL" in tags


def test_gnirs_unknown_read_mode_and_bias_are_noted() -> None:
    values, notes = fields(gnirs_frame(read_mode=(3, 5), detbias=1.5))
    assert values["detector_readmode"] is None and values["detector_welldepth"] is None
    assert "LNRS/NDAVGS: (3, 5) is not a known GNIRS read mode" in notes
    assert "DETBIAS: 1.5 V is neither the shallow nor the deep well bias" in notes
    values, notes = fields(gnirs_frame(keywords={"DECKER": None, "COADDS": "many"}))
    assert values["focal_plane_mask"] == "0.30arcsec_G5530"
    assert "DECKER: missing; focal-plane mask is the slit alone" in notes
    assert values["coadds"] is None and values["exposure_time"] == 10.0
    assert "COADDS: expected a number, got 'many'" in notes


# -- NIRI ----------------------------------------------------------------------------------


def test_niri_imaging_and_grism_values() -> None:
    values, _ = fields(niri_frame())
    assert values["filter_name"] == "K_G0204"  # open and pupil38 dropped
    assert values["exposure_time"] == 40.0 and values["coadds"] == 2
    assert values["detector_readmode"] == "Medium Background"  # LNRS 1, NDAVGS 16
    assert values["detector_welldepth"] == "Shallow"  # A_VDDUC - A_VDET = -0.6 V
    assert values["detector_roi_setting"] == "Full Frame"
    spectrum, _ = fields(
        niri_frame(
            filters=("K_G0204", "open", "Kgrism_G5206"),
            fpmask="f6-2pix_G5211",
            well="Deep",
            read_mode=(16, 16),
        )
    )
    assert spectrum["disperser"] == "Kgrism_G5206" and spectrum["mode"] == "longslit"
    assert spectrum["central_wavelength"] == pytest.approx(2.263)  # 22630 Angstrom
    assert spectrum["detector_welldepth"] == "Deep"
    assert spectrum["detector_readmode"] == "Low Background"
    small, _ = fields(niri_frame(array_size=512))
    assert small["detector_roi_setting"] == "Central512"


def test_niri_altair_laser_guide_star_and_blank_filter() -> None:
    values, _ = fields(niri_frame(altair="LGS"))
    assert values["adaptive_optics"] is True and values["laser_guide_star"] is True
    values, _ = fields(niri_frame(altair="NGS"))
    assert values["adaptive_optics"] is True and values["laser_guide_star"] is False
    values, _ = fields(niri_frame(filters=("blank", "open", "pupil38_G5236")))
    assert values["filter_name"] == "blank"


# -- F2 ------------------------------------------------------------------------------------


def test_f2_imaging_longslit_and_old_keywords() -> None:
    values, _ = fields(f2_frame())
    assert values["filter_name"] == "J_G0802" and values["detector_readmode"] == "4"
    assert values["mode"] == "imaging" and values["central_wavelength"] is None
    ls, _ = fields(
        f2_frame(
            grism="JH_G5801",
            mospos="2pix-slit",
            decker="Long_slit",
            filter2="JH_G0809",
            grwlen_um=1.39,
        )
    )
    assert ls["mode"] == "longslit" and ls["disperser"] == "JH_G5801"
    assert ls["central_wavelength"] == pytest.approx(1.39) and ls["focal_plane_mask"] == "2pix-slit"
    old, notes = fields(f2_frame(old_filter_keywords=True))
    assert old["filter_name"] == "J_G0802" and notes == []  # FILT1POS/FILT2POS
    dark, _ = fields(f2_frame(filter2="DK_G0807"))
    assert "DARK" in dark["types"].split() and dark["mode"] is None
    flam, _ = fields(f2_frame(keywords={"INSTRUME": "FLAM"}))
    assert mapping_for("FLAM").name == "F2" and flam["detector_readmode"] == "4"


def test_f2_disperser_falls_back_to_grismpos() -> None:
    values, notes = fields(f2_frame(keywords={"GRISM": None, "GRISMPOS": "HK_G5802"}))
    assert values["disperser"] == "HK_G5802" and values["spectroscopy"] is True
    assert notes == []


# -- GSAOI ---------------------------------------------------------------------------------


def test_gsaoi_values() -> None:
    values, _ = fields(gsaoi_frame(lnrs=2))
    assert values["adaptive_optics"] is True and values["laser_guide_star"] is True
    assert values["detector_readmode"] == "Bright Objects"
    assert values["filter_name"] == "Kshort_G1107" and values["wavelength_band"] == "K"
    dome, _ = fields(gsaoi_frame(obstype="FLAT", obj="Domeflat OFF", lgs=False))
    assert {"DOMEFLAT", "FLAT", "LAMPOFF", "CAL"} <= set(dome["types"].split())
    assert dome["laser_guide_star"] is False
    values, notes = fields(gsaoi_frame(lnrs=5))
    assert values["detector_readmode"] is None
    assert "LNRS: 5 is not a known GSAOI read mode" in notes


# -- GHOST ---------------------------------------------------------------------------------


def test_ghost_bundle_values_from_the_nascent_headers() -> None:
    values, notes = fields(ghost_frame(resolution="HIGH", read_mode=2, gain=2.5))
    assert values["ut_datetime"] == UT  # from the blue arm's nascent header
    assert values["focal_plane_mask"] == "HR"  # SMPNAME HI_ONLY
    assert values["detector_readmode"] == "fast"  # READMODE 2
    assert values["detector_gain_setting"] == "high"
    assert values["detector_binning"] == "1x2"
    assert values["types"] == "BUNDLE GHOST RAW SCIENCE SPECT UNPREPARED XD"
    assert notes == []


def test_ghost_time_from_the_bundle_header_first_and_differing_arms() -> None:
    values, _ = fields(ghost_frame(arm_time_only=False))
    assert values["ut_datetime"] == UT
    values, notes = fields(ghost_frame(red_binning=(2, 2)))
    assert values["detector_binning"] is None
    assert "CCDSUM: the arms differ (blue 1x2, red 2x2); binning left NULL" in notes
    bias, _ = fields(ghost_frame(obstype="BIAS", obsclass="dayCal", processed="BIAS"))
    assert bias["reduction"] == "PROCESSED_BIAS" and "SPECT" not in bias["types"].split()


# -- IGRINS-2 ------------------------------------------------------------------------------


def test_igrins2_values_and_time_fallbacks() -> None:
    values, notes = fields(igrins2_frame(band="H", nsamp=8))
    assert values["ut_datetime"] == UT  # UTSTART '2025-11-23T05:06:07.5'
    assert values["filter_name"] == "H" and values["wavelength_band"] == "H"
    assert values["detector_readmode"] == "8 Fowler samples"
    assert notes == []
    newer, _ = fields(igrins2_frame(keywords={"UTDATETI": "2025-11-23T06:00:00"}))
    assert newer["ut_datetime"] == datetime(2025, 11, 23, 6)  # UTDATETI before UTSTART
    generic, _ = fields(
        igrins2_frame(keywords={"UTSTART": None, "DATE-OBS": "2025-11-23", "TIME-OBS": "07:00:00"})
    )
    assert generic["ut_datetime"] == datetime(2025, 11, 23, 7)
    bad, notes = fields(igrins2_frame(keywords={"UTSTART": "yesterday"}))
    assert bad["ut_datetime"] is None
    assert "UTSTART: malformed date-time 'yesterday'" in notes


def test_igrins2_sky_arcs_flats_and_instrume_in_the_extension() -> None:
    sky, _ = fields(igrins2_frame(obj="sky", obsclass="partnerCal"))
    tags = sky["types"].split()
    assert "ARC" in tags and "SKY" in tags and "STANDARD" not in tags
    flat, _ = fields(igrins2_frame(obstype="FLAT", obsclass="partnerCal", lamp=("QH", "CLOSED")))
    assert {"FLAT", "LAMPON", "CAL"} <= set(flat["types"].split())
    frame = igrins2_frame(keywords={"INSTRUME": None})
    frame[1].header["INSTRUME"] = "IGRINS-2"
    values, _ = fields(frame)
    assert values["instrument"] == "IGRINS-2" and values["detector_readmode"] == "16 Fowler samples"
