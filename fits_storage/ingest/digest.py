"""md5 and size of a file's stored bytes and of its uncompressed data, in one streaming pass.

Compressed files (``.bz2``, ``.gz``) are decompressed chunk by chunk as they are read, so the
data md5 (what an uncompressed copy would have) costs no second read. The decompressed chunks
can also be written to a ``sink`` as they pass, so that astropy and fitsverify read a plain
copy instead of decompressing the file twice more (bz2 decompression dominates their cost).
"""

from __future__ import annotations

import bz2
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fits_storage.storage.base import file_md5

CHUNK_BYTES = 1 << 20

COMPRESSED_SUFFIXES = (".bz2", ".gz")


class DigestError(ValueError):
    """The compressed stream is corrupt or ends early."""


@dataclass(frozen=True)
class Digest:
    file_size: int
    file_md5: str
    data_size: int
    data_md5: str
    compressed: bool


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


def compression_of(filename: str) -> str | None:
    """``"bz2"``, ``"gz"`` or None, from the file name as the system has always done."""
    for suffix in COMPRESSED_SUFFIXES:
        if filename.endswith(suffix):
            return suffix[1:]
    return None


class Sink(Protocol):
    """Where decompressed bytes may be written as they pass (a file, usually)."""

    def write(self, data: bytes, /) -> object: ...


def _decompressor(kind: str) -> _Decompressor:
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)


def digest_file(path: Path, compression: str | None = None, sink: Sink | None = None) -> Digest:
    """Digest of ``path``; with ``compression`` ("bz2"/"gz") also of the decompressed data.

    With ``compression`` and a ``sink``, the decompressed data is also written to ``sink``
    chunk by chunk (memory stays flat). Write errors are the sink's OSErrors, raised as is.

    Multi-stream bz2 and multi-member gzip files (as ``pbzip2``/``cat a.gz b.gz`` make) are
    followed to the end, as ``bunzip2``/``gunzip`` would.
    """
    if compression is None:
        whole = file_md5(path)
        return Digest(whole.size, whole.md5, whole.size, whole.md5, compressed=False)
    file_hash, data_hash = hashlib.md5(), hashlib.md5()
    file_size = data_size = 0
    decompressor = _decompressor(compression)
    finished = False
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            file_hash.update(chunk)
            file_size += len(chunk)
            pending = chunk
            decompressed: list[bytes] = []
            try:
                while pending:
                    if finished:
                        # another stream follows the end of the previous one
                        decompressor = _decompressor(compression)
                        finished = False
                    out = decompressor.decompress(pending)
                    data_hash.update(out)
                    data_size += len(out)
                    if sink is not None and out:
                        decompressed.append(out)
                    if getattr(decompressor, "eof", False):
                        finished = True
                        pending = decompressor.unused_data  # type: ignore[attr-defined]
                    else:
                        pending = b""
            except (OSError, EOFError, zlib.error, ValueError) as exc:
                raise DigestError(f"corrupt {compression} data: {exc}") from exc
            if sink is not None:
                # outside the try: a failed write (disk full) is not corrupt input
                for out in decompressed:
                    sink.write(out)
    if file_size == 0:
        raise DigestError(f"empty {compression} file")
    if not finished:
        raise DigestError(f"{compression} stream ends early (file truncated?)")
    return Digest(file_size, file_hash.hexdigest(), data_size, data_hash.hexdigest(), True)
