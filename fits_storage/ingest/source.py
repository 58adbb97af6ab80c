"""Where the bytes of a stored file are: the one place that knows about storage.

Today files live on local disk under ``storage_root``. When the storage layer arrives
(``fits_storage/storage/``, with S3), only :func:`stat_stored` and :func:`local_copy` change:
the first asks the store for size and mtime, the second fetches a local staging copy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fits_storage.config import Config
from fits_storage.ingest.errors import IngestError
from fits_storage.storage.names import BadName, relative_name


@dataclass(frozen=True)
class StoredStat:
    """Size and modification time of the stored bytes, as change detection compares them."""

    size: int
    mtime_ns: int


def stored_path(config: Config, path: str, filename: str) -> Path:
    """``storage_root / path / filename``, refusing names that could leave storage_root."""
    try:
        return config.storage_root / relative_name(filename, path)
    except BadName as exc:
        raise IngestError(f"{describe(path, filename)}: refused name: {exc}") from exc


def describe(path: str, filename: str) -> str:
    return f"{path}/{filename}" if path else filename


def stat_stored(config: Config, path: str, filename: str) -> StoredStat:
    """Size and mtime of the stored file; IngestError when it is missing or not a file."""
    full = stored_path(config, path, filename)
    try:
        st = full.stat()
    except FileNotFoundError as exc:
        raise IngestError(f"{describe(path, filename)}: file not found at {full}") from exc
    except OSError as exc:
        raise IngestError(f"{describe(path, filename)}: cannot stat {full}: {exc}") from exc
    if not full.is_file():
        raise IngestError(f"{describe(path, filename)}: {full} is not a regular file")
    return StoredStat(size=st.st_size, mtime_ns=st.st_mtime_ns)


@contextmanager
def local_copy(config: Config, path: str, filename: str) -> Iterator[Path]:
    """A local file holding the stored bytes, for as long as the ``with`` block lasts.

    On local disk that is the stored file itself; with S3 it will be a staging copy that is
    removed afterwards.
    """
    full = stored_path(config, path, filename)
    if not os.access(full, os.R_OK):
        if not full.exists():
            raise IngestError(f"{describe(path, filename)}: file not found at {full}")
        raise IngestError(f"{describe(path, filename)}: no permission to read {full}")
    yield full
