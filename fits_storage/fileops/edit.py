"""A new copy of a FITS file with some primary-header keywords changed, and nothing else.

Only the primary header is re-rendered. Every byte after it (the primary data and every
extension) is streamed across unchanged: astropy never touches the data, so nothing is
rescaled, converted or re-padded, and the cost is that of a copy. The primary header may grow
by a block when a new keyword needs room; the FITS standard lets a header have any number of
2880-byte blocks, so the data that follows only moves.

A ``.bz2`` (or ``.gz``) file is decompressed as it is read and the new copy compressed as it
is written: compressed files stay compressed, and neither copy is ever whole in memory.
"""

from __future__ import annotations

import bz2
import hashlib
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from astropy.io import fits

from fits_storage.storage.base import CHUNK
from fits_storage.storage.compression import (
    CompressedDataError,
    StreamDecompressor,
    compression_of,
)

BLOCK = 2880
CARD = 80
END_CARD = b"END" + b" " * 5
MAX_HEADER_BLOCKS = 2000  # 5.8 MB of primary header: past that it is not a header


class EditError(Exception):
    """The file cannot be edited as asked (not FITS, a keyword reject_new keeps out...):
    retrying will not help."""


@dataclass(frozen=True)
class EditResult:
    """What an edit found and wrote. ``old`` holds the value before of every keyword asked
    for (None when the file did not have it)."""

    old: dict[str, Any]
    md5_before: str
    size_before: int
    md5_after: str
    size_after: int
    data_size: int  # uncompressed bytes written


def same_value(old: Any, new: Any) -> bool:
    """Whether a card already holds ``new`` (True is not 1, 1.0 is not 1)."""
    return type(old) is type(new) and old == new


def needed_changes(header: fits.Header, changes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in changes.items() if k not in header or not same_value(header[k], v)}


def apply_changes(
    header: fits.Header, changes: Mapping[str, Any], reject_new: bool
) -> dict[str, Any]:
    """Set ``changes`` in ``header``; returns the values before. ``reject_new`` refuses to add
    a keyword the header does not have (the protection against a misspelt keyword)."""
    missing = [k for k in changes if k not in header]
    if reject_new and missing:
        raise EditError(
            f"reject_new: the primary header has no {', '.join(missing)}; not added"
        )
    old = {k: (header[k] if k in header else None) for k in changes}
    for keyword, value in changes.items():
        header[keyword] = value
    return old


def _has_end(block: bytes | bytearray) -> bool:
    return any(block[i : i + 8] == END_CARD for i in range(0, BLOCK, CARD))


class _Content:
    """The (decompressed) content of a source file, from its start: the primary header's
    blocks first, then the rest as it comes. Hashes the bytes of the file as read."""

    def __init__(self, handle: BinaryIO, kind: str | None, limit: int | None) -> None:
        self.handle = handle
        self.md5 = hashlib.md5()
        self.size = 0
        self.data_size = 0
        self._decompressor = StreamDecompressor(kind, limit) if kind else None

    def _raw(self) -> Iterator[bytes]:
        while chunk := self.handle.read(CHUNK):
            self.md5.update(chunk)
            self.size += len(chunk)
            yield chunk

    def chunks(self) -> Iterator[bytes]:
        try:
            if self._decompressor is None:
                for chunk in self._raw():
                    self.data_size += len(chunk)
                    yield chunk
                return
            for chunk in self._raw():
                for block in self._decompressor.feed(chunk):
                    self.data_size += len(block)
                    yield block
            self._decompressor.finish()
        except CompressedDataError as exc:
            raise EditError(f"cannot be read: {exc}") from exc


def split_primary_header(chunks: Iterator[bytes]) -> tuple[bytes, bytes]:
    """The primary header's blocks (up to and including END's) and the bytes read past them."""
    buffer = bytearray()
    scanned = 0
    for chunk in chunks:
        buffer += chunk
        if scanned == 0 and len(buffer) >= 9 and not buffer.startswith(b"SIMPLE  ="):
            raise EditError("not a FITS file: it does not start with a SIMPLE card")
        while scanned + BLOCK <= len(buffer):
            block = buffer[scanned : scanned + BLOCK]
            scanned += BLOCK
            if _has_end(block):
                return bytes(buffer[:scanned]), bytes(buffer[scanned:])
            if scanned >= MAX_HEADER_BLOCKS * BLOCK:
                raise EditError(f"no END card in the first {MAX_HEADER_BLOCKS} header blocks")
    raise EditError("the file ends before its primary header does (truncated?)")


def parse_header(raw: bytes) -> fits.Header:
    try:
        text = raw.decode("ascii")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fits.Header.fromstring(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EditError(f"its primary header cannot be read: {exc}") from exc


def render_header(header: fits.Header) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = header.tostring(endcard=True, padding=True).encode("ascii")
    if len(raw) % BLOCK:
        raise EditError("the new primary header is not a whole number of blocks")
    return raw


def read_primary_header(path: Path, limit: int | None = None) -> fits.Header:
    """The primary header of the (possibly compressed) file, reading only as far as its end."""
    with open(path, "rb") as handle:
        content = _Content(handle, compression_of(path.name), limit)
        raw, _ = split_primary_header(content.chunks())
    return parse_header(raw)


class _Sink:
    """Where the new copy's content goes: the output as is, or through a compressor."""

    def __init__(self, write: Callable[[bytes], Any], kind: str | None) -> None:
        self._write = write
        self.size = 0
        self._compressor: Any = None
        if kind == "bz2":
            self._compressor = bz2.BZ2Compressor(9)
        elif kind == "gz":
            self._compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._compressor is None:
            self._write(data)
        elif out := self._compressor.compress(data):
            self._write(out)

    def close(self) -> None:
        if self._compressor is not None:
            self._write(self._compressor.flush())


def write_edited(
    source: BinaryIO,
    name: str,
    write: Callable[[bytes], Any],
    changes: Mapping[str, Any],
    reject_new: bool,
    limit: int | None = None,
) -> tuple[EditResult, fits.Header]:
    """Stream ``source`` (a file called ``name``: its suffix says if it is compressed) to
    ``write`` with ``changes`` in the primary header; returns what was done and the new
    primary header. The caller owns ``write``'s destination and decides what to keep."""
    kind = compression_of(name)
    content = _Content(source, kind, limit)
    chunks = content.chunks()
    raw, rest = split_primary_header(chunks)
    header = parse_header(raw)
    old = apply_changes(header, changes, reject_new)
    after = hashlib.md5()
    written = 0

    def counted(data: bytes) -> None:
        nonlocal written
        after.update(data)
        written += len(data)
        write(data)

    sink = _Sink(counted, kind)
    sink.write(render_header(header))
    if rest:
        sink.write(rest)
    for chunk in chunks:
        sink.write(chunk)
    sink.close()
    result = EditResult(
        old=old,
        md5_before=content.md5.hexdigest(),
        size_before=content.size,
        md5_after=after.hexdigest(),
        size_after=written,
        data_size=sink.size,
    )
    return result, header


def verify_edited(path: Path, changes: Mapping[str, Any], data_size: int) -> None:
    """Raise EditError unless astropy reads ``path`` as a complete FITS file (every HDU's
    header, and data reaching no further than the file) whose primary header holds
    ``changes``. ``data_size``: the uncompressed size the file must have."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=True, lazy_load_hdus=False) as hdulist:
                primary = hdulist[0].header
                for keyword, value in changes.items():
                    if keyword not in primary or not same_value(primary[keyword], value):
                        raise EditError(f"the new copy does not read back {keyword} = {value!r}")
                end = hdulist[-1]._data_offset + hdulist[-1]._data_size
        except EditError:
            raise
        except Exception as exc:  # noqa: BLE001 - astropy raises many kinds on bad input
            raise EditError(f"the new copy is not a readable FITS file: {exc}") from exc
    trouble = [str(w.message) for w in caught if "truncated" in str(w.message).lower()]
    if trouble:
        raise EditError(f"the new copy is incomplete: {trouble[0]}")
    if end > data_size:
        raise EditError(f"the new copy ends at byte {data_size}, its last HDU at {end}")
