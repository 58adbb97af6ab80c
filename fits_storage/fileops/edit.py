"""A new copy of a FITS file with some primary-header keywords changed, and nothing else.

Only the primary header is re-rendered. Every byte after it (the primary data and every
extension) is streamed across unchanged: astropy never touches the data, so nothing is
rescaled, converted or re-padded, and the cost is that of a copy. The primary header may grow
by a block when a new keyword needs room; the FITS standard lets a header have any number of
2880-byte blocks, so the data that follows only moves.

A plain file is copied by the kernel (``copy_file_range``: no pass through Python), so an
update costs about what copying the file costs. The new bytes are not hashed (their md5 is
learnt later: ``fileops/audit.py``); the old ones only when ingest's md5 of them cannot be
trusted, in a thread beside the copy (hashlib works outside the GIL). A ``.bz2`` (or
``.gz``) file is decompressed as it is read and the new copy compressed as it is written:
compressed files stay compressed, and neither copy is ever whole in memory.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import hashlib
import os
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from astropy.io import fits

from fits_storage.storage.atomic import create_temporary, install_temporary
from fits_storage.storage.base import CHUNK, open_regular
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
class KnownFile:
    """A file's size, mtime and md5 as ingest recorded them."""

    size: int
    mtime_ns: int
    md5: str


@dataclass(frozen=True)
class EditResult:
    """What an edit found and wrote. ``old`` holds the value before of every keyword asked
    for (None when the file did not have it)."""

    old: dict[str, Any]
    md5_before: str
    size_before: int
    size_after: int


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
    refresh_checksum(header)
    return old


def refresh_checksum(header: fits.Header) -> None:
    """A primary header that carries CHECKSUM and DATASUM gets the CHECKSUM of its new
    cards (the data, hence DATASUM, are unchanged), so the edited file still verifies."""
    if "CHECKSUM" not in header or "DATASUM" not in header:
        return
    try:
        datasum = int(str(header["DATASUM"]).strip())
        hdu = fits.PrimaryHDU()
        hdu._header = header  # astropy's own checksum of a header, given the data's sum
        header["CHECKSUM"] = hdu._calculate_checksum(datasum)
    except Exception as exc:  # noqa: BLE001 - a malformed DATASUM, or astropy changed
        raise EditError(f"cannot update its CHECKSUM: {exc}") from exc


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


@dataclass(frozen=True)
class Written:
    """What ``write_edited`` read and wrote (the output's md5 is its destination's to take)."""

    old: dict[str, Any]
    md5_before: str
    size_before: int
    data_size: int  # uncompressed bytes written
    header: fits.Header


def write_edited(
    source: BinaryIO,
    name: str,
    write: Callable[[bytes], Any],
    changes: Mapping[str, Any],
    reject_new: bool,
    limit: int | None = None,
) -> Written:
    """Stream ``source`` (a file called ``name``: its suffix says if it is compressed) to
    ``write`` with ``changes`` in the primary header. The caller owns ``write``'s
    destination and decides what to keep."""
    kind = compression_of(name)
    content = _Content(source, kind, limit)
    chunks = content.chunks()
    raw, rest = split_primary_header(chunks)
    header = parse_header(raw)
    old = apply_changes(header, changes, reject_new)
    sink = _Sink(write, kind)
    sink.write(render_header(header))
    if rest:
        sink.write(rest)
    for chunk in chunks:
        sink.write(chunk)
    sink.close()
    return Written(old, content.md5.hexdigest(), content.size, sink.size, header)


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


class _Hasher(threading.Thread):
    """The md5 of the file at ``path``, in a thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.md5 = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            digest = hashlib.md5()
            with open(self.path, "rb") as handle:
                while chunk := handle.read(CHUNK * 4):
                    digest.update(chunk)
            self.md5 = digest.hexdigest()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self.error = exc

    def result(self) -> str:
        self.join()
        if self.error is not None:
            raise self.error
        return self.md5


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_range(fd_in: int, fd_out: int, offset: int, count: int) -> None:
    """``count`` bytes of ``fd_in`` from ``offset`` appended to ``fd_out``, by the kernel when
    it can (``copy_file_range``), else through a buffer."""
    done = 0
    try:
        while done < count:
            copied = os.copy_file_range(fd_in, fd_out, min(count - done, 1 << 30), offset + done)
            if copied == 0:
                break
            done += copied
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while done < count:
        chunk = os.pread(fd_in, min(CHUNK * 4, count - done), offset + done)
        if not chunk:
            break
        _write_all(fd_out, chunk)
        done += len(chunk)
    if done != count:
        raise EditError(f"the file shrank while it was copied ({done} of {count} bytes)")


def swap_primary_header(
    local: Path,
    dest: Path,
    changes: Mapping[str, Any],
    reject_new: bool,
    before_install: Callable[[EditResult], None],
    mode: int | None = None,
    known: KnownFile | None = None,
) -> EditResult:
    """Write the uncompressed file ``local`` with ``changes`` in its primary header to
    ``dest`` atomically: a temporary file beside ``dest`` holds the new header and the
    kernel's copy of every byte after the old one; it is checked (size, astropy), then
    ``before_install`` is called with the result, then it is fsynced and renamed.

    ``known``: the file as ingest recorded it; when its size and mtime still match (ingest's
    own test for "unchanged"), its md5 is the md5 before and the file is not hashed at all."""
    with open_regular(local) as source:
        fd_in = source.fileno()
        st = os.fstat(fd_in)
        size = st.st_size
        raw, _ = split_primary_header(iter(lambda: source.read(64 * 1024), b""))
        header = parse_header(raw)
        old = apply_changes(header, changes, reject_new)
        new_raw = render_header(header)
        hasher = None
        if known is None or (known.size, known.mtime_ns) != (size, st.st_mtime_ns):
            hasher = _Hasher(local)
            hasher.start()
        fd_out, tmp = create_temporary(dest)
        installed = False
        try:
            _write_all(fd_out, new_raw)
            _copy_range(fd_in, fd_out, len(raw), size - len(raw))
            # fsynced now, so that astropy's check below reads what is on disk and the install's
            # fsync finds the file clean
            os.fsync(fd_out)
            expected = len(new_raw) + size - len(raw)
            if os.fstat(fd_out).st_size != expected:
                raise EditError("the file changed while it was copied")
            verify_edited(tmp, changes, expected)
            if hasher is not None:
                md5_before = hasher.result()
            else:
                assert known is not None
                md5_before = known.md5
            now = os.fstat(fd_in)  # after the md5: the bytes hashed are the bytes copied
            if (now.st_size, now.st_mtime_ns) != (size, st.st_mtime_ns):
                raise EditError("the file changed while it was copied")
            result = EditResult(old, md5_before, size, expected)
            before_install(result)
            install_temporary(fd_out, tmp, dest, mode)
            installed = True
        finally:
            if not installed:
                with contextlib.suppress(OSError):  # install_temporary may have closed it
                    os.close(fd_out)
                tmp.unlink(missing_ok=True)
                if hasher is not None:
                    hasher.join()
    return result
