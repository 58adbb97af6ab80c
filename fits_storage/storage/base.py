"""The one interface for where file bytes live, and the checks every store shares."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024


class StorageError(Exception):
    """A store could not do what was asked; the message says what and where."""


class StorageUnavailable(StorageError):
    """The store cannot be reached right now (network, 5xx): worth retrying later."""


class Md5Mismatch(StorageError):
    """Bytes read or written do not have the md5 (or size) they must have."""


class NotInStore(StorageError):
    """The file asked for is not in the store."""


@dataclass(frozen=True)
class StoredFile:
    """Size and md5 of one file's bytes, as verified."""

    size: int
    md5: str


@dataclass(frozen=True)
class FileStat:
    """Size and modification time of stored bytes (cheap: no reading), and the md5 when the
    store keeps it alongside (S3 metadata) rather than having to compute it."""

    size: int
    mtime_ns: int
    md5: str | None = None


class NotRegularFile(OSError):
    """A symbolic link, directory, FIFO, device or socket where a regular file was expected."""


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading only if it is itself a regular file (DESIGN §4).

    ``O_NOFOLLOW`` refuses a symlink in the last component and ``O_NONBLOCK`` keeps a FIFO
    from blocking the open; the type is then checked on the opened descriptor, so a name
    swapped between a check and the open cannot slip through. Raises NotRegularFile.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(f"{path} is a symbolic link") from exc
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{path} is {_kind(mode)}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def kind_of(mode: int) -> str | None:
    """None for a regular file, else what it is ("a symbolic link", "a FIFO"…), for messages."""
    return None if stat.S_ISREG(mode) else _kind(mode)


def handle_md5(handle: BinaryIO) -> StoredFile:
    """Size and md5 of what is left to read in ``handle``, in chunks."""
    digest = hashlib.md5()
    size = 0
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return StoredFile(size, digest.hexdigest())


def file_md5(path: Path) -> StoredFile:
    """Size and md5 of a file, read in chunks (never the whole file in memory)."""
    with open(path, "rb") as handle:
        return handle_md5(handle)


RESERVE_FRACTION = 0.05
RESERVE_CAP = 1 << 30


def room_in(directory: Path) -> int:
    """Bytes that may still be written under ``directory``: its free space less a reserve
    (5% of the filesystem, at most 1 GiB), so that one writer never fills the disk for all."""
    st = os.statvfs(directory)
    reserve = min(int(st.f_blocks * st.f_frsize * RESERVE_FRACTION), RESERVE_CAP)
    return st.f_bavail * st.f_frsize - reserve


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check(got: StoredFile, md5: str | None, size: int | None, what: str) -> None:
    if md5 is not None and got.md5 != md5.lower():
        raise Md5Mismatch(f"{what}: md5 {got.md5} where {md5.lower()} was expected")
    if size is not None and got.size != size:
        raise Md5Mismatch(f"{what}: {got.size} bytes where {size} were expected")


class Store(ABC):
    """Where file bytes live: ``path/filename`` in a directory tree or an S3 bucket.

    Every write is atomic and verified: a reader sees the old bytes or the new ones, never a
    partial file, and a write that does not verify raises instead of returning.
    """

    @abstractmethod
    def describe(self, filename: str, path: str = "") -> str:
        """Where the file is, for messages: a local path or an ``s3://`` URL."""

    @abstractmethod
    def store(
        self, source: Path, filename: str, path: str = "", *, md5: str | None = None
    ) -> StoredFile:
        """Copy ``source`` in as ``path/filename``, verified; a no-op if already there.

        ``md5`` is what the source must hash to (raise Md5Mismatch otherwise).
        """

    @abstractmethod
    def stat(self, filename: str, path: str = "") -> FileStat | None:
        """Size and mtime without reading the bytes, or None when the file is not there."""

    @abstractmethod
    def info(self, filename: str, path: str = "") -> StoredFile | None:
        """Size and md5 of the stored file, or None when it is not there."""

    @abstractmethod
    def open(self, filename: str, path: str = "") -> BinaryIO:
        """A stream of the stored bytes (raise NotInStore when it is not there)."""

    @abstractmethod
    def open_stat(self, filename: str, path: str = "") -> tuple[BinaryIO, FileStat]:
        """A stream of the stored bytes and the size/mtime (and md5 when the store keeps it) of
        exactly those bytes: what a server states about a file must be what it sends, even
        when a newer version replaces it meanwhile."""

    def clash(self, filename: str, path: str = "") -> str | None:
        """Why ``path/filename`` cannot be stored here because a file and a directory would
        share a name, or None. (Object stores have no directories: no clash.)"""
        return None

    @abstractmethod
    def fetch(self, filename: str, path: str, dest: Path) -> StoredFile:
        """Write a local copy at ``dest`` atomically, md5-verified against the store."""

    @abstractmethod
    def local_copy(self, filename: str, path: str, workdir: Path) -> AbstractContextManager[Path]:
        """A verified local file with the stored bytes, for reading only (``with`` it).

        ``workdir`` is where a copy is made when the store is not local (S3); the copy is
        removed when the ``with`` block ends. A local store yields the stored file itself.
        """

    def iter_bytes(self, filename: str, path: str = "", chunk: int = CHUNK) -> Iterator[bytes]:
        """The stored bytes in chunks; for streaming to HTTP clients."""
        with self.open(filename, path) as handle:
            while data := handle.read(chunk):
                yield data


def tree_clash(root: Path, name: str) -> str | None:
    """Why ``root/name`` cannot be a file: it is a directory, or one of its parents is a file
    (either way round a file and a directory would share a name); None if it can."""
    place = Path(root)
    parts = name.split("/")
    for depth, part in enumerate(parts):
        place = place / part
        if depth < len(parts) - 1:
            if place.exists() and not place.is_dir():
                return f"{'/'.join(parts[: depth + 1])} is a file, not a directory"
        elif place.is_dir():
            return f"{name} is a directory"
    return None
