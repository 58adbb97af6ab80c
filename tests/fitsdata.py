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
        "ELEVATIO": 54.12,
        "CRPA": -102.5,
        "RAWGEMQA": "USABLE",
        "RAWPIREQ": "YES",
        "RELEASE": (ut + timedelta(days=365)).strftime("%Y-%m-%d"),
        "ORIGNAME": filename.removesuffix(".bz2"),
        "LT": (ut - timedelta(hours=10 if site == "N" else 3)).strftime("%H:%M:%S.%f")[:10],
        "MASKNAME": "None",
        "MASKTYP": 0,
        "DETTYPE": "SDSU II CCD",
        "AMPINTEG": 5000,
        "RAWIQ": "70-percentile",
        "RAWCC": "50-percentile",
        "RAWWV": "Any",
        "RAWBG": "80-percentile",
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
        ext.header["DETSEC"] = f"[{x0 + 1}:{x0 + (nx - 8) * binning[0]},1:{ny * binning[1]}]"
        ext.header["DATASEC"] = f"[1:{nx - 8},1:{ny}]"
        ext.header["BIASSEC"] = f"[{nx - 7}:{nx},1:{ny}]"
        ext.header["AMPNAME"] = f"EEV 9273-16-03, {'left' if amp % 2 == 0 else 'right'}"
        ext.header["GAIN"] = 2.1
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


# -- raw frames of each instrument, for the descriptors and the calibration rules -----------
#
# Each ``<instrument>_frame(**options)`` returns an HDUList of headers as the instrument writes
# them (with tiny pixel arrays: the descriptors read headers only), ``<instrument>_header``
# its primary header alone, and ``write_frame`` writes any of them under an observatory name.
# Keyword overrides: ``keywords={"KEY": value}`` (None removes the keyword) for the primary
# header, ``extension_keywords`` for every extension.

# GMOS Hamamatsu chips (DRAGONS' gmos lookup): three chips of four amplifiers each.
GMOS_CHIPS = {
    "GMOS-N": ("BI13-20-4k-1", "BI12-09-4k-2", "BI13-18-4k-2"),
    "GMOS-S": ("BI5-36-4k-2", "BI11-33-4k-1", "BI12-34-4k-1"),
}
GMOS_DETTYPES = {"GMOS-N": "S10892-N", "GMOS-S": "S10892"}
# Unbinned 0-based (y1, y2, x1, x2) of the standard ROIs on the Hamamatsu detectors.
GMOS_ROIS = {
    "Full Frame": (0, 4224, 0, 6144),
    "CCD2": (0, 4224, 2048, 4096),
    "Central Spectrum": (1624, 2648, 0, 6144),
    "Central Stamp": (1986, 2286, 2922, 3222),
}
GMOS_AMPINTEG = {"slow": 11880, "fast": 5000}  # ns per pixel; Hamamatsu slow above 8000
GMOS_RAW_GAIN = {"low": 1.9, "high": 5.2}  # the raw GAIN keyword; below 3 is the low setting
PROCESSED_KEYWORD = {
    "BIAS": "PROCBIAS",
    "DARK": "PROCDARK",
    "FLAT": "PROCFLAT",
    "ARC": "PROCARC",
    "STANDARD": "PROCSTND",
    "SCIENCE": "PROCSCI",
}
_GMOS_ONLY = (
    "FILTER1",
    "FILTER2",
    "GRATING",
    "MASKNAME",
    "MASKTYP",
    "DETTYPE",
    "AMPINTEG",
)


def _frame(
    primary: Mapping[str, Any],
    extensions: Iterable[Mapping[str, Any]],
    keywords: Mapping[str, Any] | None,
    extension_keywords: Mapping[str, Any] | None,
    shape: tuple[int, int] = (4, 4),
) -> fits.HDUList:
    """An HDUList from keyword dicts (None values and overrides to None are left out)."""
    merged = {**primary, **(keywords or {})}
    hdu = fits.PrimaryHDU()
    for key, value in merged.items():
        if value is not None:
            hdu.header[key] = value
    hdus: list[fits.hdu.base._BaseHDU] = [hdu]
    for ext_keywords in extensions:
        merged_ext = {**ext_keywords, **(extension_keywords or {})}
        data = None if merged_ext.pop("_no_data", False) else np.zeros(shape, dtype=np.uint16)
        ext = fits.ImageHDU(data)
        for key, value in merged_ext.items():
            if value is not None:
                ext.header[key] = value
        hdus.append(ext)
    return fits.HDUList(hdus)


def _processing(processed: str | None, prepared: bool) -> dict[str, Any]:
    """The keywords the reduction software leaves: GEM-TLM, PREPARE, PROC<kind>."""
    if processed is None and not prepared:
        return {}
    stamp = "2025-11-24T10:00:00"
    result: dict[str, Any] = {"GEM-TLM": stamp, "PREPARE": stamp}
    if processed is not None:
        result[PROCESSED_KEYWORD[processed]] = stamp
    return result


def gemini_primary(
    filename: str,
    instrument: str,
    *,
    obstype: str = "OBJECT",
    obsclass: str = "science",
    obj: str = "NGC 1068",
    exptime: float = 120.0,
    ut: datetime | None = None,
    program_id: str | None = None,
) -> dict[str, Any]:
    """The observatory keywords every instrument writes (OBSERVAT, DATE-OBS/TIME-OBS, LT,
    RAW* conditions, QA…), without GMOS's optics."""
    keywords = observatory_header(
        filename,
        program_id=program_id,
        instrument=instrument,
        obstype=obstype,
        obsclass=obsclass,
        obj=obj,
        exptime=exptime,
        ut=ut,
    )
    for key in _GMOS_ONLY:
        keywords.pop(key, None)
    keywords["OBSERVAT"] = keywords["TELESCOP"]
    keywords["AOFOLD"] = "park-pos."
    return keywords


def gmos_frame(
    filename: str = "N20251123S0101.fits",
    *,
    binning: tuple[int, int] = (2, 2),
    roi: str = "Full Frame",
    read_speed: str = "slow",
    gain: str = "low",
    obstype: str = "OBJECT",
    obsclass: str = "science",
    obj: str = "NGC 1068",
    filter1: str = "r_G0303",
    filter2: str = "open2-8",
    grating: str = "MIRROR",
    central_wavelength_nm: float | None = None,
    maskname: str | None = None,
    exptime: float = 120.0,
    ut: datetime | None = None,
    nod_and_shuffle: bool = False,
    processed: str | None = None,
    prepared: bool = False,
    keywords: Mapping[str, Any] | None = None,
    extension_keywords: Mapping[str, Any] | None = None,
) -> fits.HDUList:
    """A raw GMOS-N (``N…`` name) or GMOS-S (``S…``) frame on the Hamamatsu detectors: the
    requested ROI (DETRO1X/XS/Y/YS, sizes in binned pixels) read by the amplifiers it
    covers (AMPNAME, DETSEC unbinned, CCDSUM, raw GAIN per extension), AMPINTEG for the read
    speed, FILTER1/FILTER2/GRATING/CENTWAVE/MASKNAME/MASKTYP for the optics. ``grating`` other
    than MIRROR makes a long-slit spectrum (``maskname`` 1.0arcsec unless given);
    ``processed`` ("BIAS", "FLAT"…) adds the reduction software's PROC keyword."""
    instrument = "GMOS-N" if filename.startswith("N") else "GMOS-S"
    primary = gemini_primary(
        filename, instrument, obstype=obstype, obsclass=obsclass, obj=obj, exptime=exptime, ut=ut
    )
    spectrum = grating != "MIRROR"
    mask = maskname if maskname is not None else ("1.0arcsec" if spectrum else "None")
    y1, y2, x1, x2 = GMOS_ROIS[roi]
    xbin, ybin = binning
    primary.update(
        {
            "DETTYPE": GMOS_DETTYPES[instrument],
            "DETECTOR": "GMOS + Hamamatsu",
            "AMPINTEG": GMOS_AMPINTEG[read_speed],
            "DETNROI": 1,
            "DETRO1X": x1 + 1,
            "DETRO1XS": (x2 - x1) // xbin,
            "DETRO1Y": y1 + 1,
            "DETRO1YS": (y2 - y1) // ybin,
            "FILTER1": filter1,
            "FILTER2": filter2,
            "GRATING": grating,
            "MASKNAME": mask,
            "MASKTYP": 0 if mask == "None" else (-1 if mask.startswith("IFU") else 1),
        }
    )
    if spectrum:
        wavelength = central_wavelength_nm if central_wavelength_nm is not None else 520.0
        primary.update({"CENTWAVE": wavelength, "GRWLEN": wavelength})
    if nod_and_shuffle:
        primary.update({"NODPIX": 1536, "ANODCNT": 4, "BNODCNT": 4})
    primary.update(_processing(processed, prepared))
    extensions = []
    for chip, chip_name in enumerate(GMOS_CHIPS[instrument]):
        for amp in range(4):
            a1 = chip * 2048 + amp * 512
            a2 = a1 + 512
            lo, hi = max(a1, x1), min(a2, x2)
            if lo >= hi:
                continue
            extensions.append(
                {
                    "EXTNAME": "SCI",
                    "EXTVER": len(extensions) + 1,
                    "CCDNAME": chip_name,
                    "AMPNAME": f"{chip_name}, {amp + 1}",
                    "CCDSUM": f"{xbin} {ybin}",
                    "DETSEC": f"[{lo + 1}:{hi},{y1 + 1}:{y2}]",
                    "CCDSEC": f"[{lo - chip * 2048 + 1}:{hi - chip * 2048},{y1 + 1}:{y2}]",
                    "GAIN": GMOS_RAW_GAIN[gain],
                }
            )
    primary["NEXTEND"] = len(extensions)
    return _frame(primary, extensions, keywords, extension_keywords)


def gmos_header(**options: Any) -> fits.Header:
    """The primary header of :func:`gmos_frame` (same options)."""
    return gmos_frame(**options)[0].header


def gnirs_frame(
    filename: str = "N20251123S0201.fits",
    *,
    obstype: str = "OBJECT",
    obsclass: str = "science",
    obj: str = "NGC 1068",
    exptime: float = 10.0,
    coadds: int = 3,
    ut: datetime | None = None,
    acquisition_mirror: bool = False,
    slit: str = "0.30arcsec_G5530",
    decker: str = "SCLong_G5534",
    grating: str = "32/mmSB_G5533",
    prism: str = "MIR_G5511",
    gratwave_um: float = 2.2,
    read_mode: tuple[int, int] = (16, 16),
    detbias: float = 0.3,
    filter1: str = "Open_G0000",
    filter2: str = "K_G0518",
    processed: str | None = None,
    prepared: bool = False,
    keywords: Mapping[str, Any] | None = None,
    extension_keywords: Mapping[str, Any] | None = None,
) -> fits.HDUList:
    """A raw GNIRS frame: long-slit K spectrum by default (ACQMIR Out, prism MIR);
    ``prism="SXD_G5536"`` is cross-dispersed, ``acquisition_mirror`` imaging. Read mode as
    (LNRS, NDAVGS), well depth by DETBIAS (0.3 V shallow, 0.6 V deep), EXPTIME per coadd."""
    primary = gemini_primary(
        filename, "GNIRS", obstype=obstype, obsclass=obsclass, obj=obj, exptime=exptime, ut=ut
    )
    primary.update(
        {
            "COADDS": coadds,
            "ACQMIR": "In" if acquisition_mirror else "Out",
            "SLIT": slit,
            "DECKER": decker,
            "GRATING": grating,
            "PRISM": prism,
            "GRATWAVE": gratwave_um,
            "LNRS": read_mode[0],
            "NDAVGS": read_mode[1],
            "DETBIAS": detbias,
            "FILTER1": filter1,
            "FILTER2": filter2,
            "CAMERA": "ShortBlue_G5540",
        }
    )
    primary.update(_processing(processed, prepared))
    return _frame(primary, [{"EXTNAME": "SCI", "EXTVER": 1}], keywords, extension_keywords)


def gnirs_header(**options: Any) -> fits.Header:
    return gnirs_frame(**options)[0].header


def niri_frame(
    filename: str = "N20251123S0301.fits",
    *,
    obstype: str = "OBJECT",
    obsclass: str = "science",
    obj: str = "NGC 1068",
    exptime: float = 20.0,
    coadds: int = 2,
    ut: datetime | None = None,
    filters: tuple[str, str, str] = ("K_G0204", "open", "pupil38_G5236"),
    fpmask: str = "f6-cam_G5208",
    read_mode: tuple[int, int] = (1, 16),
    well: str = "Shallow",
    array_size: int = 1024,
    altair: str | None = None,
    processed: str | None = None,
    prepared: bool = False,
    keywords: Mapping[str, Any] | None = None,
) -> fits.HDUList:
    """A raw NIRI frame (data in the primary HDU, ``array_size`` square): imaging by default;
    a grism in ``filters[2]`` (``"Kgrism_G5206"`` with ``fpmask="f6-2pix_G5211"``) makes a
    long-slit spectrum. Well depth by A_VDDUC - A_VDET; ``altair`` ``"NGS"``/``"LGS"`` puts
    the AO fold in (LGUSTAGE in for LGS)."""
    primary = gemini_primary(
        filename, "NIRI", obstype=obstype, obsclass=obsclass, obj=obj, exptime=exptime, ut=ut
    )
    primary.update(
        {
            "COADDS": coadds,
            "FILTER1": filters[0],
            "FILTER2": filters[1],
            "FILTER3": filters[2],
            "FPMASK": fpmask,
            "CAMERA": "f6",
            "LNRS": read_mode[0],
            "NDAVGS": read_mode[1],
            "A_VDDUC": -2.0,
            "A_VDET": -2.0 - (-0.6 if well == "Shallow" else -0.87),
        }
    )
    if altair is not None:
        primary.update({"AOFOLD": "IN", "LGUSTAGE": "IN" if altair == "LGS" else "OUT"})
    primary.update(_processing(processed, prepared))
    merged = {**primary, **(keywords or {})}
    hdu = fits.PrimaryHDU(np.zeros((array_size, array_size), dtype=np.int16))
    for key, value in merged.items():
        if value is not None:
            hdu.header[key] = value
    return fits.HDUList([hdu])


def niri_header(**options: Any) -> fits.Header:
    return niri_frame(**options)[0].header


def f2_frame(
    filename: str = "S20251123S0401.fits",
    *,
    obstype: str = "OBJECT",
    obsclass: str = "science",
    obj: str = "NGC 1068",
    exptime: float = 60.0,
    ut: datetime | None = None,
    filter1: str = "Open",
    filter2: str = "J_G0802",
    grism: str = "Open",
    mospos: str = "Open",
    decker: str = "Open",
    grwlen_um: float = 1.25,
    lnrs: int = 4,
    old_filter_keywords: bool = False,
    processed: str | None = None,
    prepared: bool = False,
    keywords: Mapping[str, Any] | None = None,
) -> fits.HDUList:
    """A raw F2 frame: J imaging by default; ``grism="JH_G5801"`` with ``mospos="2pix-slit"``
    and ``decker="Long_slit"`` a long-slit spectrum. ``old_filter_keywords`` writes the
    pre-2010 FILT1POS/FILT2POS instead of FILTER1/FILTER2."""
    primary = gemini_primary(
        filename, "F2", obstype=obstype, obsclass=obsclass, obj=obj, exptime=exptime, ut=ut
    )
    names = ("FILT1POS", "FILT2POS") if old_filter_keywords else ("FILTER1", "FILTER2")
    primary.update(
        {
            names[0]: filter1,
            names[1]: filter2,
            "GRISM": grism,
            "MOSPOS": mospos,
            "DECKER": decker,
            "GRWLEN": grwlen_um,
            "LNRS": lnrs,
            "LYOT": "f/16_G5830",
        }
    )
    primary.update(_processing(processed, prepared))
    return _frame(primary, [{"EXTNAME": "SCI", "EXTVER": 1}], keywords, None)


def f2_header(**options: Any) -> fits.Header:
    return f2_frame(**options)[0].header


def gsaoi_frame(
    filename: str = "S20251123S0501.fits",
    *,
    obstype: str = "OBJECT",
    obsclass: str = "science",
    obj: str = "NGC 1068",
    exptime: float = 30.0,
    coadds: int = 1,
    ut: datetime | None = None,
    filter1: str = "Kshort_G1107",
    filter2: str = "Open",
    lnrs: int = 8,
    lgs: bool = True,
    processed: str | None = None,
    prepared: bool = False,
    keywords: Mapping[str, Any] | None = None,
) -> fits.HDUList:
    """A raw GSAOI frame: four arrays (ARRAYID), behind GeMS with the laser loop closed unless
    ``lgs`` is False; read mode by LNRS (2, 8, 16)."""
    primary = gemini_primary(
        filename, "GSAOI", obstype=obstype, obsclass=obsclass, obj=obj, exptime=exptime, ut=ut
    )
    primary.update(
        {
            "COADDS": coadds,
            "FILTER1": filter1,
            "FILTER2": filter2,
            "LNRS": lnrs,
            "DETECTOR": "GSAOI",
            "LGSLOOP": "CLOSED" if lgs else "OPEN",
            "AOFOLD": "IN",
        }
    )
    primary.update(_processing(processed, prepared))
    arrays = ("H2RG-032-074", "H2RG-032-064", "H2RG-032-071", "H2RG-032-061")
    extensions = [{"EXTNAME": "SCI", "EXTVER": i + 1, "ARRAYID": a} for i, a in enumerate(arrays)]
    return _frame(primary, extensions, keywords, None)


def gsaoi_header(**options: Any) -> fits.Header:
    return gsaoi_frame(**options)[0].header


def ghost_frame(
    filename: str = "S20251123S0601.fits",
    *,
    obstype: str = "OBJECT",
    obsclass: str = "science",
    obj: str = "HD 12345",
    exptime: float = 300.0,
    ut: datetime | None = None,
    resolution: str = "STD",
    read_mode: int = 1,
    blue_binning: tuple[int, int] = (1, 2),
    red_binning: tuple[int, int] = (1, 2),
    gain: float = 0.6,
    arm_time_only: bool = True,
    processed: str | None = None,
    keywords: Mapping[str, Any] | None = None,
) -> fits.HDUList:
    """A raw GHOST bundle: a minimal primary header (observation keywords; its DATE-OBS only
    when ``arm_time_only`` is False), then for each arm a header-only nascent primary header
    (CAMERA, NAMPS, SMPNAME, READMODE, DATE-OBS/UTSTART) and four amplifier extensions
    (AMPNAME, DETSEC, CCDSUM, GAIN), then a slit-viewer image."""
    primary = gemini_primary(
        filename, "GHOST", obstype=obstype, obsclass=obsclass, obj=obj, exptime=exptime, ut=ut
    )
    arm_keys = {k: primary[k] for k in ("DATE-OBS", "TIME-OBS", "UT")}
    if arm_time_only:
        for key in arm_keys:
            primary.pop(key)
    for key in ("LT",):
        primary.pop(key)
    if processed is not None:
        primary.update({"GEM-TLM": "2025-11-24T10:00:00", "PRSLITBI": "2025-11-24T10:00:00"})
    smpname = {"STD": "LO_ONLY", "HIGH": "HI_ONLY"}[resolution]
    extensions: list[dict[str, Any]] = []
    for arm, (xbin, ybin) in (("BLUE", blue_binning), ("RED", red_binning)):
        extensions.append(
            {
                "_no_data": True,
                "CAMERA": arm,
                "NAMPS": 4,
                "SMPNAME": smpname,
                "READMODE": read_mode,
                "UTSTART": arm_keys["UT"],
                **arm_keys,
            }
        )
        for amp in range(4):
            x0, y0 = (amp % 2) * 2048, (amp // 2) * 2048
            extensions.append(
                {
                    "EXTNAME": "SCI",
                    "AMPNAME": f"{arm.lower()}-{amp + 1}",
                    "DETSEC": f"[{x0 + 1}:{x0 + 2048},{y0 + 1}:{y0 + 2048}]",
                    "CCDSUM": f"{xbin} {ybin}",
                    "GAIN": gain,
                }
            )
    extensions.append({"CAMERA": "SLITV", "NAMPS": 1, "EXTNAME": "SCI", "CCDSUM": "2 2"})
    return _frame(primary, extensions, keywords, None)


def ghost_header(**options: Any) -> fits.Header:
    return ghost_frame(**options)[0].header


def igrins2_frame(
    filename: str = "N20251123S0701.fits",
    *,
    obstype: str = "OBJECT",
    obsclass: str = "science",
    obj: str = "HD 12345",
    exptime: float = 60.0,
    ut: datetime | None = None,
    band: str = "K",
    nsamp: int = 16,
    lamp: tuple[str, str] | None = None,
    processed: str | None = None,
    prepared: bool = False,
    keywords: Mapping[str, Any] | None = None,
) -> fits.HDUList:
    """A raw IGRINS-2 frame of one band (FILTER H or K), its time as the ISO date-time
    UTSTART (no DATE-OBS/TIME-OBS), Fowler samples NSAMP; ``lamp`` (GCALLAMP, GCALSHUT)."""
    primary = gemini_primary(
        filename, "IGRINS-2", obstype=obstype, obsclass=obsclass, obj=obj, exptime=exptime, ut=ut
    )
    start = f"{primary.pop('DATE-OBS')}T{primary.pop('TIME-OBS')}"
    primary.pop("UT")
    primary.update({"UTSTART": start, "FILTER": band, "NSAMP": nsamp})
    if lamp is not None:
        primary.update({"GCALLAMP": lamp[0], "GCALSHUT": lamp[1]})
    primary.update(_processing(processed, prepared))
    return _frame(primary, [{"EXTNAME": "SCI", "EXTVER": 1}], keywords, None)


def igrins2_header(**options: Any) -> fits.Header:
    return igrins2_frame(**options)[0].header


INSTRUMENT_FRAMES = {
    "GMOS-N": lambda **o: gmos_frame("N20251123S0101.fits", **o),
    "GMOS-S": lambda **o: gmos_frame("S20251123S0101.fits", **o),
    "GNIRS": gnirs_frame,
    "NIRI": niri_frame,
    "F2": f2_frame,
    "GSAOI": gsaoi_frame,
    "GHOST": ghost_frame,
    "IGRINS-2": igrins2_frame,
}


def write_frame(dest_dir: Path, hdulist: fits.HDUList, filename: str) -> Path:
    """Write a generated frame under ``filename`` (``.bz2``: compressed) in ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    data = _hdulist_bytes(hdulist)
    target = dest_dir / filename
    target.write_bytes(bz2.compress(data) if filename.endswith(".bz2") else data)
    return target


# -- a generated GMOS-S night for calibration association --------------------------------------

NIGHT = datetime(2025, 11, 23)


def _amps(rows: str) -> str:
    """GMOS-S amp_read_area as the descriptors give it: every amplifier of the three chips."""
    chips = ("BI5-36-4k-2", "BI11-33-4k-1", "BI12-34-4k-1")
    areas = [
        f"'{chip}, {amp + 1}':[{c * 2048 + amp * 512 + 1}:{c * 2048 + amp * 512 + 512},{rows}]"
        for c, chip in enumerate(chips)
        for amp in range(4)
    ]
    return "+".join(sorted(areas))


_AMPS = {"Full Frame": _amps("1:4224"), "Central Spectrum": _amps("1625:2648")}
_TYPES = {
    "OBJECT": "GMOS GMOS_S LS RAW SCIENCE SPECT UNPREPARED",
    "BIAS": "BIAS CAL GMOS GMOS_S RAW UNPREPARED",
    "FLAT": "CAL FLAT GCALFLAT GMOS GMOS_S LS RAW SPECT UNPREPARED",
    "ARC": "ARC CAL GMOS GMOS_S LS RAW SPECT UNPREPARED",
}
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
    "elevation": 54.12,  # ELEVATIO and CRPA of observatory_header
    "cass_rotator_pa": -102.5,
    "overscan_trimmed": False,
    "overscan_subtracted": False,
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
        types=_TYPES[obstype],
    )
    if obstype != "OBJECT":
        fields.update(observation_class="dayCal", object=obstype, exposure_time=1.0)
    if obstype == "BIAS":
        fields.update(
            exposure_time=0.0,
            spectroscopy=False,
            mode=None,
            disperser="MIRROR",
            focal_plane_mask="Imaging",
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
    """The night's frame as a raw GMOS file (:func:`gmos_frame`) whose descriptors give
    ``fields``."""
    x, y = (int(n) for n in fields["detector_binning"].split("x"))
    wavelength = fields["central_wavelength"]
    hdus = gmos_frame(
        name,
        binning=(x, y),
        roi=fields["detector_roi_setting"],
        read_speed=fields["detector_readmode"],
        gain=fields["detector_gain_setting"],
        obstype=fields["observation_type"],
        obsclass=fields["observation_class"],
        obj=fields["object"],
        filter1=fields["filter_name"] if fields["filter_name"] != "open" else "open1-6",
        grating=fields["disperser"],
        central_wavelength_nm=None if wavelength is None else round(wavelength * 1000, 3),
        maskname=fields["focal_plane_mask"],
        exptime=fields["exposure_time"],
        ut=fields["ut_datetime"],
        keywords={"DATALAB": fields["data_label"], "GEMPRGID": fields["program_id"]},
    )
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / name
    hdus.writeto(target, overwrite=True)
    return target
