"""Bounded, streaming decompression of ``.bz2`` and ``.gz`` data (DESIGN §4).

A few kilobytes of bz2 can expand to gigabytes, and one ``decompress(data)`` call returns
everything a chunk expands to at once. Here every call is capped (``max_length``), so each
block handed out is at most ``block`` bytes whatever the input, and the total is checked
against a ceiling as it grows: memory stays flat and a bomb stops at the ceiling with
:class:`TooLarge`, before it fills a disk or a response. Ingest, ``GET /file`` and any upload
check use this one decompressor.

Multi-stream bz2 and multi-member gzip (as ``pbzip2`` or ``cat a.gz b.gz`` make) are followed
to the end, as ``bunzip2``/``gunzip`` would.
"""

from __future__ import annotations

import bz2
import zlib
from collections.abc import Iterable, Iterator
from typing import Protocol

BLOCK = 1 << 20
COMPRESSED_SUFFIXES = (".bz2", ".gz")


class CompressedDataError(ValueError):
    """The compressed data is corrupt, empty or ends early; the message says which."""


class TooLarge(CompressedDataError):
    """The data decompresses to more than the ceiling allowed."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class _Decompressor(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def compression_of(filename: str) -> str | None:
    """``"bz2"``, ``"gz"`` or None, from the file name as the system has always done."""
    for suffix in COMPRESSED_SUFFIXES:
        if filename.endswith(suffix):
            return suffix[1:]
    return None


def _new(kind: str) -> _Decompressor:
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "gz":
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    raise ValueError(f"unknown compression {kind!r}")


class StreamDecompressor:
    """Feed compressed chunks in, get decompressed blocks of at most ``block`` bytes out.

    ``limit`` (bytes, None for none) is the most the whole stream may decompress to; going past
    it raises :class:`TooLarge` before the block that crosses it is handed out. Call
    :meth:`finish` after the last chunk: a stream that ends early is an error.
    """

    def __init__(self, kind: str, limit: int | None = None, block: int = BLOCK) -> None:
        self.kind = kind
        self.limit = limit
        self.block = block
        self.size = 0  # decompressed bytes handed out so far
        self.compressed_size = 0
        self._dec = _new(kind)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decompressed blocks ``data`` yields (consume them all before the next feed)."""
        self.compressed_size += len(data)
        pending = data
        try:
            while True:
                if self._dec.eof:
                    if not pending:
                        return
                    self._dec = _new(self.kind)  # another stream follows the previous one
                out = self._dec.decompress(pending, self.block)
                if out:
                    self._count(len(out))
                    yield out
                if self._dec.eof:
                    pending = self._dec.unused_data
                    continue
                pending = getattr(self._dec, "unconsumed_tail", b"")
                if pending or self._more_output_waiting(len(out)):
                    continue
                return
        except (OSError, EOFError, zlib.error) as exc:
            raise CompressedDataError(f"corrupt {self.kind} data: {exc}") from exc

    def _more_output_waiting(self, produced: int) -> bool:
        if isinstance(self._dec, bz2.BZ2Decompressor):
            return not self._dec.needs_input
        return produced == self.block  # zlib may hold output back when max_length is hit

    def _count(self, produced: int) -> None:
        self.size += produced
        if self.limit is not None and self.size > self.limit:
            raise TooLarge(f"decompresses to more than {self.limit} bytes", self.limit)

    def finish(self) -> None:
        """Raise CompressedDataError unless the input was a complete stream."""
        if self.compressed_size == 0:
            raise CompressedDataError(f"empty {self.kind} file")
        if not self._dec.eof:
            raise CompressedDataError(f"{self.kind} stream ends early (file truncated?)")


def decompressed(
    chunks: Iterable[bytes], kind: str, limit: int | None = None, block: int = BLOCK
) -> Iterator[bytes]:
    """The decompressed data of ``chunks`` in blocks of at most ``block`` bytes, at most
    ``limit`` bytes in all (TooLarge past it); CompressedDataError if corrupt or incomplete."""
    stream = StreamDecompressor(kind, limit, block)
    for chunk in chunks:
        yield from stream.feed(chunk)
    stream.finish()
