"""The data store as a directory tree: ``storage_root/<path>/<filename>``."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from fits_storage.storage.atomic import copy_atomic
from fits_storage.storage.base import (
    FileStat,
    NotInStore,
    Store,
    StoredFile,
    check,
    file_md5,
    tree_clash,
)
from fits_storage.storage.names import check_unreserved, relative_name


class LocalStore(Store):
    """``reserved``: names under ``root`` that belong to the system (see names.reserved_within);
    ``file_mode``: permissions of stored files, None leaving them to the umask."""

    def __init__(
        self, root: Path, reserved: tuple[str, ...] = (), file_mode: int | None = None
    ) -> None:
        self.root = Path(root)
        self.reserved = reserved
        self.file_mode = file_mode

    def path_of(self, filename: str, path: str = "") -> Path:
        """The file's place on disk (names checked, so it is always inside the root and never
        on one of the system's own files)."""
        return self.root / check_unreserved(relative_name(filename, path), self.reserved)

    def clash(self, filename: str, path: str = "") -> str | None:
        return tree_clash(self.root, relative_name(filename, path))

    def describe(self, filename: str, path: str = "") -> str:
        return str(self.path_of(filename, path))

    def store(
        self, source: Path, filename: str, path: str = "", *, md5: str | None = None
    ) -> StoredFile:
        dest = self.path_of(filename, path)
        if dest.exists() and Path(source).exists():
            there, here = file_md5(dest), file_md5(source)
            check(here, md5, None, str(source))
            if there == here:
                return there
        return copy_atomic(Path(source), dest, md5=md5, mode=self.file_mode)

    def stat(self, filename: str, path: str = "") -> FileStat | None:
        try:
            st = self.path_of(filename, path).stat()
        except FileNotFoundError:
            return None
        return FileStat(st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None

    def info(self, filename: str, path: str = "") -> StoredFile | None:
        dest = self.path_of(filename, path)
        return file_md5(dest) if dest.is_file() else None

    def open(self, filename: str, path: str = "") -> BinaryIO:
        try:
            return open(self.path_of(filename, path), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotInStore(f"{self.describe(filename, path)} does not exist") from exc

    def open_stat(self, filename: str, path: str = "") -> tuple[BinaryIO, FileStat]:
        handle = self.open(filename, path)
        st = os.fstat(handle.fileno())  # of the bytes this handle reads, whatever renames follow
        return handle, FileStat(st.st_size, st.st_mtime_ns)

    def fetch(self, filename: str, path: str, dest: Path) -> StoredFile:
        source = self.path_of(filename, path)
        if not source.is_file():
            raise NotInStore(f"{source} does not exist")
        return copy_atomic(source, dest)

    @contextmanager
    def local_copy(self, filename: str, path: str, workdir: Path) -> Iterator[Path]:
        """The file itself: it is already local, so nothing is copied."""
        source = self.path_of(filename, path)
        if not source.is_file():
            raise NotInStore(f"{source} does not exist")
        yield source
