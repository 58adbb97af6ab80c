"""md5 and size of a file's stored bytes and of its uncompressed data, in one streaming pass.

Compressed files (``.bz2``, ``.gz``) are decompressed block by block as they are read
(:mod:`fits_storage.storage.compression`: bounded blocks, a ceiling on the total), so the data
md5 (what an uncompressed copy would have) costs no second read. The decompressed blocks can
also be written to a ``sink`` as they pass, so that astropy and fitsverify read a plain copy
instead of decompressing the file twice more (bz2 decompression dominates their cost).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fits_storage.storage.base import file_md5
from fits_storage.storage.compression import (
    COMPRESSED_SUFFIXES,
    CompressedDataError,
    StreamDecompressor,
    TooLarge,
    compression_of,
)

CHUNK_BYTES = 1 << 20

# The compressed stream is corrupt, empty or ends early (TooLarge: past the ceiling).
DigestError = CompressedDataError

__all__ = [
    "COMPRESSED_SUFFIXES",
    "Digest",
    "DigestError",
    "Sink",
    "TooLarge",
    "compression_of",
    "digest_file",
]


@dataclass(frozen=True)
class Digest:
    file_size: int
    file_md5: str
    data_size: int
    data_md5: str
    compressed: bool


class Sink(Protocol):
    """Where decompressed bytes may be written as they pass (a file, usually)."""

    def write(self, data: bytes, /) -> object: ...


def digest_file(
    path: Path,
    compression: str | None = None,
    sink: Sink | None = None,
    limit: int | None = None,
) -> Digest:
    """Digest of ``path``; with ``compression`` ("bz2"/"gz") also of the decompressed data.

    With ``compression`` and a ``sink``, the decompressed data is also written to ``sink``
    block by block (memory stays flat). Write errors are the sink's OSErrors, raised as is.
    ``limit`` caps the decompressed size: past it :class:`TooLarge` is raised, and no more than
    ``limit`` bytes have been written to the sink.
    """
    if compression is None:
        whole = file_md5(path)
        return Digest(whole.size, whole.md5, whole.size, whole.md5, compressed=False)
    file_hash, data_hash = hashlib.md5(), hashlib.md5()
    stream = StreamDecompressor(compression, limit, CHUNK_BYTES)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            file_hash.update(chunk)
            for out in stream.feed(chunk):
                data_hash.update(out)
                if sink is not None:
                    sink.write(out)
    stream.finish()
    return Digest(
        stream.compressed_size,
        file_hash.hexdigest(),
        stream.size,
        data_hash.hexdigest(),
        True,
    )
