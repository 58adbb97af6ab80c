"""FITS files for tests: real ones shipped by astropy and astroscrappy, generated observatory
files, and deliberately broken ones. Every helper writes into a directory the test owns
(``tmp_path``): shipped files are never touched in place.

Real files are found at run time inside the installed packages:

* astropy's ``astropy/io/fits/tests/data/*.fits`` (HST multi-extension files, tables,
  tile-compressed images, and deliberately invalid ones such as ``verify.fits``,
  ``checksum_false.fits`` and ``invalid/group_invalid.fits``);
* astroscrappy's ``astroscrappy/tests/data/gmos.fits``: a real GMOS-S frame with the
  observatory's own headers and 4 HDUs of real pixels (astroscrappy is installed ``--no-deps``).
"""

from __future__ import annotations

import bz2
import shutil
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

BLOCK = 2880

# -- real files -----------------------------------------------------------------------------

# Real values read by hand from astroscrappy's gmos.fits (primary header; ORIGNAME is the
# name the file had at the observatory).
GMOS_ORIGNAME = "S20190808S0048.fits"
GMOS_HEADER = {
    "program_id": "GS-2019B-Q-305",
    "observation_id": "GS-2019B-Q-305-7",
    "data_label": "GS-2019B-Q-305-7-004",
    "telescope": "Gemini-South",
    "instrument": "GMOS-S",
    "ut_datetime": datetime(2019, 8, 8, 0, 42, 27, 400000),
    "observation_type": "OBJECT",
    "observation_class": "partnerCal",
    "object": "LTT7379",
    "ra": 279.108125,
    "dec": -44.31025,
    "filter_name": "GG455_G0329",
    "exposure_time": 90.0,
    "disperser": "R400+_G5325",
    "central_wavelength": 0.74,
    "airmass": 1.086,
    "qa_state": "Pass",
    "release": datetime(2019, 8, 8),
    "engineering": False,
    "science_verification": False,
    "calibration_program": False,
}

# astropy files that astropy or fitsverify report problems with, yet which open as FITS.
ASTROPY_INVALID = ("verify.fits", "checksum_false.fits", "invalid/group_invalid.fits")


def astropy_data_dir() -> Path:
    """The directory of astropy's shipped FITS test files."""
    return Path(str(files("astropy") / "io" / "fits" / "tests" / "data"))


def astropy_fits_names(include_invalid: bool = True) -> list[str]:
    """Names (relative to :func:`astropy_data_dir`) of astropy's ``.fits`` test files."""
    root = astropy_data_dir()
    names = sorted(p.name for p in root.glob("*.fits"))
    if include_invalid:
        names += sorted(f"invalid/{p.name}" for p in (root / "invalid").glob("*.fits"))
    else:
        names = [n for n in names if n not in ASTROPY_INVALID]
    return names


def copy_astropy_file(name: str, dest_dir: Path, new_name: str | None = None) -> Path:
    """Copy one astropy test file (e.g. ``"test0.fits"``) into ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / (new_name or Path(name).name)
    shutil.copyfile(astropy_data_dir() / name, target)
    return target


def copy_astropy_files(dest_dir: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Copy several (default: all) astropy test files into ``dest_dir``."""
    return [copy_astropy_file(n, dest_dir) for n in (names or astropy_fits_names())]


def gmos_source() -> Path:
    """The real GMOS-S file shipped by astroscrappy (read only: copy it before use)."""
    return Path(str(files("astroscrappy") / "tests" / "data" / "gmos.fits"))


def copy_gmos_file(dest_dir: Path, new_name: str = GMOS_ORIGNAME) -> Path:
    """Copy the real GMOS-S file into ``dest_dir``, by default under its observatory name."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / new_name
    shutil.copyfile(gmos_source(), target)
    return target


# -- generated observatory files ------------------------------------------------------------


def observatory_filename(
    site: str = "N", day: date | str = "20251123", frame: int = 42, suffix: str = ".fits"
) -> str:
    """A raw-data name as the DHS writes it: ``N20251123S0042.fits``."""
    if isinstance(day, date):
        day = day.strftime("%Y%m%d")
    return f"{site}{day}S{frame:04d}{suffix}"


def observatory_header(
    filename: str,
    *,
    program_id: str | None = None,
    instrument: str | None = None,
    obstype: str = "OBJECT",
    obsclass: str = "science",
    obj: str = "NGC 1068",
    exptime: float = 120.0,
    ut: datetime | None = None,
) -> dict[str, Any]:
    """The primary-header keywords of a generated file named ``filename``.

    Values follow the observatory's conventions (RA/DEC in degrees, DATE-OBS + TIME-OBS/UT,
    FILTER1/FILTER2 with component ids, RAWGEMQA/RAWPIREQ, RELEASE a year after the date).
    """
    site = filename[0] if filename[:1] in ("N", "S") else "N"
    day = datetime.strptime(filename[1:9], "%Y%m%d") if filename[1:9].isdigit() else None
    ut = ut or (day or datetime(2025, 11, 23)) + timedelta(hours=5, minutes=6, seconds=7.5)
    frame = int(filename[10:14]) if filename[10:14].isdigit() else 1
    # Semesters: A is February to July, B is August to January (of the next year).
    semester = f"{ut.year}A" if 2 <= ut.month <= 7 else f"{ut.year - (ut.month == 1)}B"
    prefix = "GN" if site == "N" else "GS"
    program_id = program_id or f"{prefix}-{semester}-Q-101"
    observation = f"{program_id}-{frame % 50 + 1}"
    return {
        "TELESCOP": "Gemini-North" if site == "N" else "Gemini-South",
        "INSTRUME": instrument or ("GMOS-N" if site == "N" else "GMOS-S"),
        "OBJECT": obj,
        "OBSTYPE": obstype,
        "OBSCLASS": obsclass,
        "GEMPRGID": program_id,
        "OBSID": observation,
        "DATALAB": f"{observation}-{frame:03d}",
        "DATE-OBS": ut.strftime("%Y-%m-%d"),
        "TIME-OBS": ut.strftime("%H:%M:%S.%f")[:10],
        "UT": ut.strftime("%H:%M:%S.%f")[:10],
        "RA": 40.669625,
        "DEC": -0.01328,
        "FILTER1": "r_G0303",
        "FILTER2": "open2-8",
        "GRATING": "MIRROR",
        "EXPTIME": exptime,
        "AIRMASS": 1.234,
        "RAWGEMQA": "USABLE",
        "RAWPIREQ": "YES",
        "RELEASE": (ut + timedelta(days=365)).strftime("%Y-%m-%d"),
        "ORIGNAME": filename.removesuffix(".bz2"),
    }


def make_observatory_file(
    dest_dir: Path,
    filename: str | None = None,
    *,
    extensions: int = 3,
    binning: tuple[int, int] = (2, 2),
    shape: tuple[int, int] = (32, 48),
    seed: int = 0,
    header: Mapping[str, Any] | None = None,
    drop: Iterable[str] = (),
    compress: bool | None = None,
) -> Path:
    """Write a realistic multi-extension raw file and return its path.

    ``extensions`` image HDUs (one per amplifier) carry CCDSUM, DETSEC, DATASEC, BIASSEC;
    ``seed`` changes the pixels (so a rewrite with another seed has another md5); ``header``
    overrides or adds primary keywords (value None removes one), ``drop`` removes keywords;
    a name ending ``.bz2`` (or ``compress=True``) writes bzip2-compressed bytes.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    filename = filename or observatory_filename()
    if compress and not filename.endswith(".bz2"):
        filename += ".bz2"
    keywords = observatory_header(filename)
    keywords.update(header or {})
    for key in drop:
        keywords.pop(key, None)
    primary = fits.PrimaryHDU()
    for key, value in keywords.items():
        if value is not None:
            primary.header[key] = value
    primary.header["NEXTEND"] = extensions
    rng = np.random.default_rng(seed)
    hdus: list[fits.hdu.base._BaseHDU] = [primary]
    ny, nx = shape
    for amp in range(extensions):
        pixels = rng.integers(900, 1100, size=shape, dtype=np.uint16)
        ext = fits.ImageHDU(pixels, name="SCI", ver=amp + 1)
        x0 = amp * (nx - 8) * binning[0]
        ext.header["CCDSUM"] = f"{binning[0]} {binning[1]}"
        ext.header["DETSEC"] = f"[{x0 + 1}:{x0 + (nx - 8) * binning[0]}:1:{ny * binning[1]}]"
        ext.header["DATASEC"] = f"[1:{nx - 8},1:{ny}]"
        ext.header["BIASSEC"] = f"[{nx - 7}:{nx},1:{ny}]"
        ext.header["AMPNAME"] = f"EEV 9273-16-03, {'left' if amp % 2 == 0 else 'right'}"
        hdus.append(ext)
    data = _hdulist_bytes(fits.HDUList(hdus))
    target = dest_dir / filename
    target.write_bytes(bz2.compress(data) if filename.endswith(".bz2") else data)
    return target


def _hdulist_bytes(hdulist: fits.HDUList) -> bytes:
    import io

    buffer = io.BytesIO()
    hdulist.writeto(buffer)
    return buffer.getvalue()


def bzip2_file(source: Path, dest: Path | None = None) -> Path:
    """A bzip2-compressed copy of ``source`` (default: next to it, with ``.bz2`` added)."""
    dest = dest or source.with_name(source.name + ".bz2")
    dest.write_bytes(bz2.compress(source.read_bytes()))
    return dest


# -- broken files ---------------------------------------------------------------------------


def write_truncated(dest: Path, source: Path | None = None, missing_bytes: int = 4000) -> Path:
    """``source`` (default: a generated file) with its last ``missing_bytes`` cut off."""
    data = _source_bytes(dest, source)
    dest.write_bytes(data[: len(data) - missing_bytes])
    return dest


def write_unpadded(dest: Path) -> Path:
    """A FITS file whose last data unit is not padded to a multiple of 2880 bytes."""
    hdulist = fits.HDUList([fits.PrimaryHDU(np.arange(100, dtype=np.int16))])
    data = _hdulist_bytes(hdulist)
    dest.write_bytes(data[: BLOCK + 200])
    return dest


def write_garbage_tail(dest: Path, source: Path | None = None) -> Path:
    """A valid file followed by bytes that are not a FITS header (a botched append)."""
    dest.write_bytes(_source_bytes(dest, source) + b"this is not a header " * 200)
    return dest


def write_not_fits(dest: Path) -> Path:
    """Text with a FITS name."""
    dest.write_text("This is not a FITS file, whatever its name says.\n" * 100)
    return dest


def write_empty(dest: Path) -> Path:
    """A zero-byte file (a DHS write that never happened)."""
    dest.write_bytes(b"")
    return dest


def write_corrupt_bz2(dest: Path) -> Path:
    """A ``.bz2`` name whose compressed stream is cut short."""
    data = bz2.compress(_source_bytes(dest.with_suffix(""), None))
    dest.write_bytes(data[: len(data) // 2])
    return dest


def _source_bytes(dest: Path, source: Path | None) -> bytes:
    if source is not None:
        return source.read_bytes()
    scratch = dest.parent / f".source-{dest.name}"
    path = make_observatory_file(dest.parent, scratch.name)
    data = path.read_bytes()
    path.unlink()
    return data


def header_value_matches(expected: object) -> object:
    """What an extracted header value must equal: floats to rounding, anything else exactly."""
    import pytest

    return pytest.approx(expected) if isinstance(expected, float) else expected


def write_raw_card_values(path: Path, values: Mapping[str, bytes]) -> Path:
    """Overwrite the value field (columns 11-80) of primary-header cards with raw bytes that
    astropy would refuse to write (NUL bytes, ``NaN``, ``Inf``), as other software does."""
    data = bytearray(path.read_bytes())
    for keyword, raw in values.items():
        start = data.find(keyword.encode().ljust(8) + b"= ")
        assert 0 <= start < BLOCK * 4 and start % 80 == 0, keyword
        data[start + 10 : start + 80] = raw.ljust(70)
    path.write_bytes(bytes(data))
    return path


def fits_bytes(payload: bytes = b"") -> bytes:
    """Whole FITS bytes carrying ``payload`` as the data of a one-HDU ``BITPIX = 8`` image: for
    tests that need a valid upload with contents of their choosing."""
    pixels = np.frombuffer(payload, dtype=np.uint8) if payload else None
    return _hdulist_bytes(fits.HDUList([fits.PrimaryHDU(pixels)]))


# -- a GMOS-N raw frame for the preview mosaic ---------------------------------------------

GMOS_N_CHIP = (2048, 4224)  # unbinned columns and rows of one Hamamatsu chip
GMOS_N_AMP_WIDTH = 512  # unbinned columns of one amplifier (4 per chip)
GMOS_N_OVERSCAN = 32  # binned overscan columns of every amplifier
GMOS_N_SKY = 1000.0  # electrons, the same on every chip
# A bright block on each chip (unbinned chip columns and rows), straddling amplifiers 2 and 3.
GMOS_N_STAR_X = (800, 1248)
GMOS_N_STAR_ROWS = ((600, 1000), (1800, 2200), (3000, 3400))
GMOS_N_STAR = 5000.0


def gmos_n_amp(index: int) -> dict[str, float]:
    """Bias (ADU) and gain (electrons/ADU) of amplifier ``index`` (0-11): all different."""
    return {"bias": 400.0 + 73.0 * index, "gain": 1.5 + 0.07 * index}


def make_gmos_n_frame(
    dest_dir: Path,
    binning: int = 2,
    filename: str = "N20251123S0101.fits",
    *,
    rows: int = GMOS_N_CHIP[1],
    seed: int = 0,
) -> Path:
    """A raw GMOS-N frame: 3 chips x 4 amplifiers in 12 extensions, with the observatory's
    DETSEC/CCDSEC/DATASEC/BIASSEC/CCDSUM/GAIN layout at ``binning`` x ``binning``.

    Every amplifier has its own bias and gain; in electrons the sky is GMOS_N_SKY everywhere,
    with a GMOS_N_STAR block on each chip (GMOS_N_STAR_X, GMOS_N_STAR_ROWS[chip]). Left-hand
    amplifiers have their overscan on the left, right-hand ones on the right, as on the real
    detector. ``rows`` (unbinned) shortens the chips for quick tests.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    primary = fits.PrimaryHDU()
    for key, value in observatory_header(filename, instrument="GMOS-N").items():
        primary.header[key] = value
    primary.header["NEXTEND"] = 12
    primary.header["DETECTOR"] = "GMOS + Hamamatsu_new"
    hdus: list[fits.hdu.base._BaseHDU] = [primary]
    width = GMOS_N_AMP_WIDTH // binning
    height = rows // binning
    for chip in range(3):
        for amp in range(4):
            index = chip * 4 + amp
            levels = gmos_n_amp(index)
            x0 = amp * GMOS_N_AMP_WIDTH  # unbinned, on the chip
            electrons = np.full((height, width), GMOS_N_SKY, dtype=np.float64)
            cols = np.arange(width) * binning + x0
            rows_unbinned = np.arange(height) * binning
            star_rows = GMOS_N_STAR_ROWS[chip]
            in_x = (cols >= GMOS_N_STAR_X[0]) & (cols < GMOS_N_STAR_X[1])
            in_y = (rows_unbinned >= star_rows[0]) & (rows_unbinned < star_rows[1])
            electrons[np.ix_(in_y, in_x)] += GMOS_N_STAR
            adu = levels["bias"] + electrons / levels["gain"]
            adu += rng.normal(0.0, 3.0, size=adu.shape)
            overscan = levels["bias"] + rng.normal(0.0, 3.0, size=(height, GMOS_N_OVERSCAN))
            left = amp < 2
            pixels = np.hstack([overscan, adu] if left else [adu, overscan])
            ext = fits.ImageHDU(np.round(pixels).astype(np.uint16), name=f"EXT{index + 1}")
            data_x = GMOS_N_OVERSCAN + 1 if left else 1
            bias_x = 1 if left else width + 1
            det_x = chip * GMOS_N_CHIP[0] + x0
            ext.header["CCDNAME"] = f"BI{chip + 11}-{chip + 20}-4k-1"
            ext.header["AMPNAME"] = f"BI{chip + 11}-{chip + 20}-4k-1, {amp + 1}"
            ext.header["CCDSUM"] = f"{binning} {binning}"
            ext.header["DATASEC"] = f"[{data_x}:{data_x + width - 1},1:{height}]"
            ext.header["BIASSEC"] = f"[{bias_x}:{bias_x + GMOS_N_OVERSCAN - 1},1:{height}]"
            ext.header["CCDSEC"] = f"[{x0 + 1}:{x0 + GMOS_N_AMP_WIDTH},1:{rows}]"
            ext.header["DETSEC"] = f"[{det_x + 1}:{det_x + GMOS_N_AMP_WIDTH},1:{rows}]"
            ext.header["GAIN"] = levels["gain"]
            hdus.append(ext)
    target = dest_dir / filename
    fits.HDUList(hdus).writeto(target, overwrite=True)
    return target


# -- a generated GMOS-S night for calibration association --------------------------------------

NIGHT = datetime(2025, 11, 23)
_AMPS = {"Full Frame": "'BI5-36-4k-2':[1:2048,1:4224]+'BI11-33-4k-1':[1:2048,1:4224]",
         "Central Spectrum": "'BI5-36-4k-2':[1:2048,1792:2432]+'BI11-33-4k-1':[1:2048,1792:2432]"}
_NIGHT_COMMON: dict[str, Any] = {
    "instrument": "GMOS-S",
    "observation_class": "science",
    "object": "NGC 1068",
    "program_id": "GS-2025B-Q-101",
    "exposure_time": 600.0,
    "disperser": "B600+_G5323",
    "focal_plane_mask": "1.0arcsec",
    "detector_readmode": "slow",
    "detector_gain_setting": "low",
    "spectroscopy": True,
    "mode": "longslit",
    "reduction": "RAW",
    "qa_state": "Pass",
    "engineering": False,
}


def _night_frame(
    number: int,
    obstype: str,
    hours: float,
    binning: str,
    roi: str,
    filter_name: str,
    wavelength: float,
    **extra: Any,
) -> tuple[str, dict[str, Any]]:
    name = observatory_filename("S", NIGHT + timedelta(hours=hours), number)
    fields = dict(_NIGHT_COMMON)
    fields.update(
        observation_type=obstype,
        data_label=f"GS-2025B-Q-101-{number}-001",
        ut_datetime=NIGHT + timedelta(hours=hours),
        filter_name=filter_name,
        central_wavelength=wavelength,
        detector_binning=binning,
        detector_roi_setting=roi,
        amp_read_area=_AMPS[roi],
        types=f"{obstype} GMOS SOUTH RAW SPECT LS" + (" CAL" if obstype != "OBJECT" else ""),
    )
    if obstype != "OBJECT":
        fields.update(observation_class="dayCal", object=obstype, exposure_time=1.0)
    if obstype == "BIAS":
        fields.update(
            exposure_time=0.0,
            spectroscopy=False,
            mode="imaging",
            disperser="MIRROR",
            focal_plane_mask="Imaging",
            types="BIAS GMOS SOUTH RAW CAL",
        )
    fields.update(extra)
    return name, fields


# Science at two binnings and two ROIs; biases at both (two for the first science frame, one
# read fast); spectroscopic flats in two filters (one 200 days earlier, outside the 180-day
# window); arcs at two central wavelengths (and one at neither). Hours count from
# 2025-11-23 00:00 UT (negative: the day before).
GMOS_NIGHT: dict[str, dict[str, Any]] = dict(
    [
        _night_frame(101, "OBJECT", 2.0, "2x2", "Full Frame", "GG455_G0329", 0.600),
        _night_frame(102, "OBJECT", 3.0, "1x1", "Full Frame", "GG455_G0329", 0.600),
        _night_frame(103, "OBJECT", 4.0, "2x2", "Central Spectrum", "OG515_G0330", 0.700),
        _night_frame(11, "BIAS", -10.0, "2x2", "Full Frame", "open", None),
        _night_frame(12, "BIAS", -30.0, "2x2", "Full Frame", "open", None),
        _night_frame(13, "BIAS", -9.0, "1x1", "Full Frame", "open", None),
        _night_frame(14, "BIAS", -8.0, "2x2", "Central Spectrum", "open", None),
        _night_frame(15, "BIAS", -7.0, "2x2", "Full Frame", "open", None, detector_readmode="fast"),
        _night_frame(21, "FLAT", 2.1, "2x2", "Full Frame", "GG455_G0329", 0.600),
        _night_frame(22, "FLAT", 3.1, "1x1", "Full Frame", "GG455_G0329", 0.600),
        _night_frame(23, "FLAT", 4.1, "2x2", "Central Spectrum", "OG515_G0330", 0.700),
        _night_frame(24, "FLAT", -24.0 * 200, "2x2", "Full Frame", "GG455_G0329", 0.600),
        _night_frame(31, "ARC", 6.0, "2x2", "Full Frame", "GG455_G0329", 0.600),
        _night_frame(32, "ARC", 6.1, "1x1", "Full Frame", "GG455_G0329", 0.600),
        _night_frame(33, "ARC", 6.2, "2x2", "Central Spectrum", "OG515_G0330", 0.700),
        _night_frame(34, "ARC", 6.3, "2x2", "Full Frame", "GG455_G0329", 0.650),
    ]
)
# Ingested later: a 1x1 full-frame bias closer to 102 than bias 13.
LATE_BIAS = dict([_night_frame(16, "BIAS", 1.0, "1x1", "Full Frame", "open", None)])


def night_name(number: int) -> str:
    """The file name of the night's frame ``number`` (late bias included)."""
    for name in [*GMOS_NIGHT, *LATE_BIAS]:
        if int(name[10:14]) == number:
            return name
    raise KeyError(number)


def write_night_frame(dest_dir: Path, name: str, fields: Mapping[str, Any]) -> Path:
    """A small raw file with the keywords a GMOS descriptor layer reads for ``fields``."""
    x, y = (int(n) for n in fields["detector_binning"].split("x"))
    wavelength = fields["central_wavelength"]
    nanometres = None if wavelength is None else round(wavelength * 1000, 3)
    header: dict[str, Any] = observatory_header(
        name,
        program_id=fields["program_id"],
        instrument=fields["instrument"],
        obstype=fields["observation_type"],
        obsclass=fields["observation_class"],
        obj=fields["object"],
        exptime=fields["exposure_time"],
        ut=fields["ut_datetime"],
    )
    header.update(
        DATALAB=fields["data_label"],
        FILTER1=fields["filter_name"],
        FILTER2="open2-8",
        GRATING=fields["disperser"],
        MASKNAME=fields["focal_plane_mask"],
        MASKTYP=1,
        CENTWAVE=nanometres,
        GRWLEN=nanometres,
        AMPINTEG=5000 if fields["detector_readmode"] == "slow" else 1000,
        GAINSET=fields["detector_gain_setting"],
        DETROI="Full Frame" if fields["detector_roi_setting"] == "Full Frame" else "CentSpec",
    )
    return make_observatory_file(dest_dir, name, extensions=2, binning=(x, y), header=header)
