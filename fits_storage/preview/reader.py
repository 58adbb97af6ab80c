"""Opening a stored FITS file for drawing: memory-mapped, structure checked, HDUs sorted.

Astropy opens the file with ``memmap=True`` and reads pixels only when :mod:`.reduce` asks
for a band of rows, so a frame is never copied whole. A compressed file (``.bz2``, ``.gz``)
is decompressed once, streaming in 1 MiB blocks and bounded by ``max_uncompressed_bytes``
(:mod:`fits_storage.storage.compression`), into a private file beside the work, which is then
memory-mapped the same way and removed afterwards.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from fits_storage.preview.errors import PreviewError
from fits_storage.storage.atomic import AtomicFile
from fits_storage.storage.base import CHUNK
from fits_storage.storage.compression import (
    CompressedDataError,
    compression_of,
    decompressed,
)

IMAGE_TYPES = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)
TABLE_TYPES = (fits.BinTableHDU, fits.TableHDU, fits.GroupsHDU)


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while data := handle.read(CHUNK):
            yield data


@contextmanager
def uncompressed(local: Path, workdir: Path, limit: int, label: str) -> Iterator[Path]:
    """``local`` itself, or for a compressed file its data decompressed once into a private
    file under ``workdir`` (removed afterwards)."""
    kind = compression_of(local.name)
    if kind is None:
        yield local
        return
    workdir.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=".preview-", dir=workdir))
    try:
        target = private / local.name.removesuffix(f".{kind}")
        try:
            with AtomicFile(target) as out:
                for block in decompressed(_chunks(local), kind, limit=limit):
                    out.write(block)
                out.commit()
        except CompressedDataError as exc:
            raise PreviewError(f"{label}: {exc}") from exc
        yield target
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(lines[:2])[:300]


def _check_structure(hdulist: fits.HDUList, size: int, label: str) -> None:
    """A file shorter than its headers describe is truncated: its pixels cannot be drawn."""
    expected = 0
    for hdu in hdulist:
        info = hdu.fileinfo()
        expected = max(expected, info["datLoc"] + info["datSpan"])
    if size < expected:
        raise PreviewError(
            f"{label}: truncated: {size} bytes, but its headers describe {expected} bytes"
        )


@contextmanager
def open_fits(path: Path, label: str) -> Iterator[fits.HDUList]:
    """The file's HDUs, memory-mapped; PreviewError when it is not readable FITS."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            hdulist = fits.open(path, memmap=False, lazy_load_hdus=False, mode="readonly")
        except Exception as exc:  # noqa: BLE001 - astropy raises many kinds on bad input
            raise PreviewError(f"{label}: not a readable FITS file: {_first_line(exc)}") from exc
    try:
        if len(hdulist) == 0:
            raise PreviewError(f"{label}: not a readable FITS file: no HDUs")
        _check_structure(hdulist, os.path.getsize(path), label)
        yield hdulist
    finally:
        try:
            hdulist.close()
        except Exception:  # noqa: BLE001, S110 - closing a damaged file may complain
            pass


@dataclass(frozen=True)
class Contents:
    """The HDUs worth drawing: images (2-D or more), spectra (1-D), and what else there is."""

    images: list[tuple[int, fits.Header]]
    spectra: list[tuple[int, fits.Header]]
    tables: int
    tiny: int  # image HDUs of a single pixel


def _dimensions(header: fits.Header) -> list[int]:
    naxis = int(header.get("NAXIS", 0))
    return [int(header.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]


def contents(hdulist: fits.HDUList) -> Contents:
    """Sort the HDUs; when extensions are named SCI, only those are images to draw."""
    images, spectra, tables, tiny = [], [], 0, 0
    for index, hdu in enumerate(hdulist):
        if isinstance(hdu, TABLE_TYPES):
            tables += 1
            continue
        if not isinstance(hdu, IMAGE_TYPES):
            continue
        dims = _dimensions(hdu.header)
        if not dims or 0 in dims:
            continue
        significant = [d for d in dims if d > 1]
        if len(dims) >= 2 and dims[0] > 1 and dims[1] > 1:
            images.append((index, hdu.header))
        elif len(significant) == 1 and significant[0] == dims[0]:
            spectra.append((index, hdu.header))
        elif not significant:
            tiny += 1
    science = [(i, h) for i, h in images if str(h.get("EXTNAME", "")).strip().upper() == "SCI"]
    return Contents(science or images, spectra, tables, tiny)


_BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


@dataclass(frozen=True)
class Band:
    """Stored pixels and their scaling: value = raw * scale + zero; ``blank`` marks none."""

    raw: np.ndarray
    scale: float = 1.0
    zero: float = 0.0
    blank: int | None = None

    def values(self) -> np.ndarray:
        values = self.raw.astype(np.float32)
        if self.blank is not None:
            values[self.raw == self.blank] = np.nan
        if self.scale != 1.0:
            values *= np.float32(self.scale)
        if self.zero:
            values += np.float32(self.zero)
        return values


class Pixels:
    """Bands of an opened file's image pixels, read through one memory map of the file.

    Only the bands asked for are touched, and :meth:`release` gives the pages read back
    (``MADV_DONTNEED``: they stay in the page cache, not in this process), so memory stays at
    a band's worth however large the frame. BZERO/BSCALE are applied and BLANK becomes NaN
    band by band. Tile-compressed images are read through astropy's ``section``, which
    decompresses only the tiles a band needs.
    """

    def __init__(self, path: Path, hdulist: fits.HDUList) -> None:
        self.hdulist = hdulist
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        size = os.fstat(self._file.fileno()).st_size
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None

    def _array(self, index: int) -> np.ndarray | None:
        hdu = self.hdulist[index]
        header = hdu.header
        if isinstance(hdu, fits.CompImageHDU) or self._map is None:
            return None
        dtype = _BITPIX.get(int(header.get("BITPIX", 0)))
        if dtype is None:
            return None
        shape = tuple(int(header[f"NAXIS{i}"]) for i in range(int(header["NAXIS"]), 0, -1))
        offset = hdu.fileinfo()["datLoc"]
        return np.ndarray(shape, dtype=dtype, buffer=self._map, offset=offset)

    def raw(self, index: int, rows: slice, columns: slice) -> Band:
        """Pixels of the first 2-D plane of HDU ``index`` as stored (a view of the map, not
        copied), with what turns them into values."""
        hdu = self.hdulist[index]
        header = hdu.header
        lead = (0,) * (int(header.get("NAXIS", 2)) - 2)
        array = self._array(index)
        if array is None:
            return Band(np.asarray(hdu.section[(*lead, rows, columns)], dtype=np.float32))
        raw = array[(*lead, rows, columns)]
        blank = header.get("BLANK") if raw.dtype.kind in "iu" else None
        return Band(raw, float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0)), blank)

    def read(self, index: int, rows: slice, columns: slice) -> np.ndarray:
        """float32 values of a band: scaled, BLANK as NaN."""
        return self.raw(index, rows, columns).values()

    def release(self) -> None:
        """Give back the pages read so far (the file's bytes stay cached by the kernel)."""
        if self._map is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # an array still refers to it: freed with that array
        self._file.close()
