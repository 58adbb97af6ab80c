"""An upload's FITS structure, checked while its bytes arrive.

The archive refuses a bad upload at the door (DESIGN §4) so that a truncated or corrupt
re-upload never replaces a good stored file. The check needs no second read and no memory
beyond one header: every HDU must start with a header that parses (SIMPLE first, XTENSION
after), the data units its keywords describe must follow in whole 2880-byte blocks, and the
bytes must end exactly where the last one does. A ``.bz2`` or ``.gz`` file is decompressed as
it streams, in bounded pieces, and refused once it expands past a ceiling; nothing decompressed
is kept.

Decompressing costs a third of what compressing did, and the exporter waits for the answer, so
the web app checks a compressed upload only as far as its first header (:func:`door_check`) and
``ingest_uploaded_file`` checks it whole (:func:`check_file`) before it may replace a stored file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

from astropy.io import fits

from fits_storage.scan.names import FileKind, file_kind, is_miscfile_meta
from fits_storage.storage.compression import CompressedDataError, StreamDecompressor, TooLarge

BLOCK = 2880
CARD = 80
MAX_HEADER_BLOCKS = 1000  # 2.9 MB of header cards: far beyond any real header
PIECE = 1024 * 1024  # the most decompressed bytes held at once
BITPIX = frozenset({8, 16, 32, 64, -32, -64})
SUMMIT_KINDS = (FileKind.OBSLOG, FileKind.MISCFILE)


class NotFits(ValueError):
    """The bytes are not complete FITS; the message says why, in one line."""


class ExpandsTooFar(NotFits):
    """A compressed upload expands past the ceiling."""


class Checker(Protocol):
    hdus: int  # whole headers read so far

    def feed(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


class FitsStructure:
    """Feed the bytes in order, then finish(); either raises NotFits at the first sign of a
    file that is not whole FITS HDUs."""

    def __init__(self) -> None:
        self.size = 0
        self.hdus = 0
        self._block = bytearray()  # part of a header block
        self._header = bytearray()  # the header blocks of the HDU being read
        self._skip = 0  # data bytes (with padding) still to pass over

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                self.size += step
                view = view[step:]
                continue
            take = view[: BLOCK - len(self._block)]
            self._block += take
            self.size += len(take)
            view = view[len(take) :]
            if len(self._block) == BLOCK:
                block = bytes(self._block)
                self._block.clear()
                self._header_block(block)

    def finish(self) -> None:
        if self.size == 0:
            raise NotFits("empty file")
        if self._skip:
            raise NotFits(
                f"truncated: {self.size} bytes end {self._skip} bytes short of the end of "
                f"HDU {self.hdus}"
            )
        if self._block or self._header:
            raise NotFits(
                f"truncated: {self.size} bytes end inside the header of HDU {self.hdus + 1}"
                + (f" (not a whole number of {BLOCK}-byte blocks)" if self._block else "")
            )

    def _header_block(self, block: bytes) -> None:
        if not self._header:
            start = b"SIMPLE  " if self.hdus == 0 else b"XTENSION"
            if block[:8] != start:
                where = "the file" if self.hdus == 0 else f"what follows HDU {self.hdus}"
                raise NotFits(f"{where} does not start with {start.decode().strip()}")
        self._header += block
        if len(self._header) > MAX_HEADER_BLOCKS * BLOCK:
            raise NotFits(f"HDU {self.hdus + 1}: no END card in {MAX_HEADER_BLOCKS} blocks")
        for offset in range(0, BLOCK, CARD):
            card = block[offset : offset + CARD]
            if card[:3] == b"END" and not card[3:].strip():
                end = len(self._header) - BLOCK + offset + CARD
                self._skip = _padded(self._data_size(bytes(self._header[:end])))
                self._header.clear()
                self.hdus += 1
                return

    def _data_size(self, header_bytes: bytes) -> int:
        label = f"HDU {self.hdus + 1}"
        try:
            header = fits.Header.fromstring(header_bytes)
            bitpix, naxis = _int(header, "BITPIX"), _int(header, "NAXIS")
            if bitpix not in BITPIX or not 0 <= naxis <= 999:
                raise ValueError(f"BITPIX {bitpix} / NAXIS {naxis} out of range")
            dims = [_int(header, f"NAXIS{i}") for i in range(1, naxis + 1)]
            pcount = _int(header, "PCOUNT", 0)
            gcount = _int(header, "GCOUNT", 1)
        except Exception as exc:  # noqa: BLE001 - any failure to read it is "does not parse"
            text = " ".join(str(exc).split())[:200]
            raise NotFits(f"{label}: header does not parse: {text}") from exc
        if min(dims + [pcount, gcount]) < 0:
            raise NotFits(f"{label}: negative NAXISn, PCOUNT or GCOUNT")
        if naxis == 0:
            return 0
        groups = self.hdus == 0 and dims[0] == 0 and header.get("GROUPS") is True
        return abs(bitpix) // 8 * gcount * (pcount + math.prod(dims[1:] if groups else dims))


class Expanding:
    """Compressed bytes (bzip2 or gzip; concatenated streams too, as from pbzip2) fed to
    ``inner`` decompressed, a piece at a time, and never more than ``limit`` bytes in all.
    With ``first_header_only`` it stops decompressing once ``inner`` has read a header."""

    def __init__(
        self, kind: str, inner: Checker, limit: int, *, first_header_only: bool = False
    ) -> None:
        self.kind, self.inner, self.limit = kind, inner, limit
        self.first_header_only = first_header_only
        self._stream = StreamDecompressor(kind, limit, block=PIECE)

    @property
    def expanded(self) -> int:
        return self._stream.size

    def feed(self, data: bytes) -> None:
        if self.enough:
            return
        try:
            for out in self._stream.feed(data):
                self.inner.feed(out)
                if self.enough:
                    return
        except TooLarge as exc:
            raise ExpandsTooFar(f"expands past the ceiling of {self.limit} bytes") from exc
        except CompressedDataError as exc:
            raise NotFits(f"not valid {self.kind} data: {exc}") from exc

    def finish(self) -> None:
        if self.enough:
            return
        try:
            self._stream.finish()
        except CompressedDataError as exc:
            raise NotFits(f"the {self.kind} stream is cut short ({exc})") from exc
        self.inner.finish()

    @property
    def hdus(self) -> int:
        return self.inner.hdus

    @property
    def enough(self) -> bool:
        return self.first_header_only and self.inner.hdus > 0


def checker_for(filename: str, limit: int, *, first_header_only: bool = False) -> Checker:
    """The structure check for a file named ``filename`` (``.bz2``/``.gz``: compressed; with
    ``first_header_only`` a compressed one is read only as far as its first header)."""
    lowered = filename.lower()
    for suffix, kind in ((".bz2", "bz2"), (".gz", "gz")):
        if lowered.endswith(suffix):
            return Expanding(kind, FitsStructure(), limit, first_header_only=first_header_only)
    return FitsStructure()


class NoCheck:
    """The summit's files that are not FITS (observing logs, miscfiles and their metadata)
    have no structure to check: the md5 the sender states is their check."""

    def feed(self, data: bytes) -> None:
        pass

    def finish(self) -> None:
        pass


def is_checked_as_fits(filename: str) -> bool:
    """Every upload is checked as FITS but observing logs, miscfiles and their metadata."""
    return not (is_miscfile_meta(filename) or file_kind(filename) in SUMMIT_KINDS)


class DoorCheck:
    """What the web app checks while an upload streams in: a plain file whole, a compressed one
    until its first header has parsed (the rest is ``check_file``'s, in the worker). After a
    problem it only waits for the end of the body, so that the client reads the answer."""

    def __init__(self, filename: str, limit: int) -> None:
        self._check: Checker = (
            checker_for(filename, limit, first_header_only=True)
            if is_checked_as_fits(filename)
            else NoCheck()
        )
        self.problem: NotFits | None = None

    def feed(self, data: bytes) -> None:
        if self.problem is None:
            try:
                self._check.feed(data)
            except NotFits as exc:
                self.problem = exc

    def finish(self) -> None:
        """Raise the first problem seen, if any."""
        if self.problem is None:
            try:
                self._check.finish()
            except NotFits as exc:
                self.problem = exc
        if self.problem is not None:
            raise self.problem


def check_file(path: Path, filename: str, limit: int) -> None:
    """Check a whole file on disk as ``filename`` (compression from its name); NotFits if bad."""
    check = checker_for(filename, limit)
    with open(path, "rb") as handle:
        while chunk := handle.read(PIECE):
            check.feed(chunk)
    check.finish()


def is_compressed(filename: str) -> bool:
    return filename.lower().endswith((".bz2", ".gz"))


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _int(header: fits.Header, key: str, default: int | None = None) -> int:
    value = header.get(key, default)
    if value is None:
        raise KeyError(f"{key} missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} = {value!r} is not a whole number")
    return value
