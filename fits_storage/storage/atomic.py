"""Writing a file so that a crash at any moment leaves the old file or the new one
(docs/architecture.md §4)."""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import time
from pathlib import Path
from types import TracebackType

from fits_storage.storage.base import CHUNK, StoredFile, check, file_md5, fsync_dir


def _create_temporary(dest: Path) -> tuple[int, Path]:
    """A new, exclusive ``.<name>.<random>.part`` beside ``dest``, created 0666 less the umask
    (``mkstemp`` would force 0600, and a later chmod would have to guess the umask)."""
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666), tmp
        except FileExistsError:
            continue


def create_temporary(dest: Path) -> tuple[int, Path]:
    """An open descriptor (write only) and the name of a new temporary file beside ``dest``,
    for a writer that needs the descriptor itself (``os.copy_file_range``); install it with
    :func:`install_temporary`."""
    return _create_temporary(dest)


def install_temporary(fd: int, tmp: Path, dest: Path, mode: int | None = None) -> None:
    """fsync the temporary file ``tmp`` (open as ``fd``, closed here) and rename it to
    ``dest``, durably. The caller has checked its bytes."""
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


STALE_SECONDS = 3600  # a temporary file not written to for this long belongs to no one


class AtomicFile:
    """Bytes written to a temporary name beside ``dest``, renamed to ``dest`` only by commit().

    The temporary name starts with '.', which no accepted file name does, so it can never be
    mistaken for a real file. Leaving the ``with`` block without commit() removes it.

    The file gets the permissions the process umask gives a new file (the system we replace
    runs with ``UMask=0002`` so that staff can edit files in place), or ``mode`` when given
    (the ``file_mode`` configuration key).
    """

    def __init__(self, dest: Path, mode: int | None = None) -> None:
        self.dest = dest
        self.mode = mode
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = _create_temporary(dest)
        self._file = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5()
        self.size = 0
        self.done = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._md5.update(data)
        self.size += len(data)

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    def flush(self) -> None:
        """Hand the bytes written so far to the temporary file, so that it can be checked
        (read by another library) before commit() makes it the real one."""
        self._file.flush()

    def commit(
        self, *, md5: str | None = None, size: int | None = None, reread: bool = False
    ) -> StoredFile:
        """fsync, check against the expected md5/size (and optionally re-read), then rename.

        On a mismatch the temporary file is removed and Md5Mismatch raised.
        """
        try:
            self._file.flush()
            if self.mode is not None:
                os.fchmod(self._file.fileno(), self.mode)
            os.fsync(self._file.fileno())
            self._file.close()
            written = StoredFile(self.size, self.md5)
            check(written, md5, size, str(self.dest))
            if reread:
                check(file_md5(self.tmp), written.md5, written.size, f"{self.dest} (re-read)")
            os.replace(self.tmp, self.dest)
            self.done = True
        finally:
            if not self.done:
                self.abort()
        fsync_dir(self.dest.parent)
        return written

    def abort(self) -> None:
        """Forget the bytes written: close and remove the temporary file."""
        if not self._file.closed:
            self._file.close()
        self.tmp.unlink(missing_ok=True)
        self.done = True

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.done:
            self.abort()


def copy_atomic(
    source: Path, dest: Path, *, md5: str | None = None, mode: int | None = None
) -> StoredFile:
    """Copy ``source`` to ``dest`` atomically; the copy is re-read and must match the source."""
    with AtomicFile(dest, mode) as out, open(source, "rb") as handle:
        while chunk := handle.read(CHUNK):
            out.write(chunk)
        return out.commit(md5=md5, reread=True)


def remove_stale_parts(root: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove AtomicFile temporaries (``.<name>.<random>.part``) anywhere under ``root`` not
    written to for ``older_than`` seconds: left by a process that died mid-write. The age
    spares those another live process is writing. Symlinks are not followed."""
    cutoff = time.time() - older_than
    removed = []
    for directory, _, names in os.walk(root):
        for name in names:
            if not (name.startswith(".") and name.endswith(".part")):
                continue
            path = Path(directory, name)
            try:
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue
    return removed
