"""Where the bytes of a stored file are: the one place ingest asks the data store.

Everything goes through the storage layer (:func:`fits_storage.storage.get_store`), so ingest
works the same on local disk (``storage_root``) and on S3 (``using_s3``). Storage errors become
the queue's terms here: a file that is not there, a refused name, or an object whose bytes do
not match its md5 is an :class:`IngestError` (permanent: retrying reads the same bytes); a store
that cannot be reached, or a staging copy that cannot be written, is a
:class:`TransientError` (retried with backoff).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fits_storage.config import Config
from fits_storage.ingest.errors import FileMissingError, IngestError
from fits_storage.queues.errors import TransientError
from fits_storage.storage import (
    BadName,
    LocalStore,
    Md5Mismatch,
    NotInStore,
    StorageError,
    StorageUnavailable,
    Store,
    get_store,
)

STAGING_DIR = ".s3_staging"


@dataclass(frozen=True)
class StoredStat:
    """Size and modification time of the stored bytes, as change detection compares them, and
    their md5 when the store keeps it (S3 metadata): S3 times are whole seconds, so a rewrite
    of the same size within a second shows only in the md5."""

    size: int
    mtime_ns: int
    md5: str | None = None


@lru_cache(maxsize=8)
def store_for(config: Config) -> Store:
    """The configuration's data store, made once per process: an S3 client costs ~0.1 s to
    build (three per ingest otherwise) and is safe to share between threads."""
    return get_store(config)


def staging_dir(config: Config) -> Path:
    """Where a store that is not local puts the copy ingest reads.

    A hidden folder of ``storage_root``: local disk this worker owns, which no stored or
    uploaded name can reach (names starting with ``.`` are refused), unlike
    ``upload_staging_dir``, which belongs to the web process and holds what is yet to be stored.
    """
    return config.storage_root / STAGING_DIR


def describe(path: str, filename: str) -> str:
    return f"{path}/{filename}" if path else filename


def _where(store: Store, path: str, filename: str) -> str:
    """The store's name for the file, refusing names that could leave the store."""
    try:
        return store.describe(filename, path)
    except BadName as exc:
        raise IngestError(f"{describe(path, filename)}: refused name: {exc}") from exc


def _not_found(store: Store, path: str, filename: str, where: str) -> IngestError:
    label = describe(path, filename)
    if not isinstance(store, LocalStore):
        return FileMissingError(f"{label}: file not found in the data store at {where}")
    if Path(where).exists():
        return IngestError(f"{label}: {where} is not a regular file")
    return FileMissingError(f"{label}: file not found at {where}")


def _storage_failure(exc: StorageError, path: str, filename: str) -> Exception:
    """A storage error as the queue should act on it (see the module doc)."""
    label = describe(path, filename)
    if isinstance(exc, StorageUnavailable):
        return TransientError(f"{label}: data store unavailable: {exc}")
    if isinstance(exc, Md5Mismatch):
        return IngestError(f"{label}: stored bytes do not match their md5: {exc}")
    return IngestError(f"{label}: data store error: {exc}")


def stat_stored(config: Config, path: str, filename: str) -> StoredStat:
    """Size, mtime (and md5 if kept) of the stored file, without reading it.

    IngestError when it is missing or not a file; TransientError when the store is unreachable.
    """
    store = store_for(config)
    where = _where(store, path, filename)
    try:
        found = store.stat(filename, path)
    except StorageError as exc:
        raise _storage_failure(exc, path, filename) from exc
    except OSError as exc:
        raise IngestError(f"{describe(path, filename)}: cannot stat {where}: {exc}") from exc
    if found is None:
        raise _not_found(store, path, filename, where)
    return StoredStat(size=found.size, mtime_ns=found.mtime_ns, md5=found.md5)


@contextmanager
def local_copy(config: Config, path: str, filename: str) -> Iterator[Path]:
    """A local file holding the stored bytes, for as long as the ``with`` block lasts.

    On local disk that is the stored file itself; from S3 it is a copy under
    :func:`staging_dir`, verified against the object's md5 and removed afterwards.
    """
    store = store_for(config)
    where = _where(store, path, filename)
    label = describe(path, filename)
    with ExitStack() as stack:
        try:
            local = stack.enter_context(store.local_copy(filename, path, staging_dir(config)))
        except NotInStore as exc:
            raise _not_found(store, path, filename, where) from exc
        except StorageError as exc:
            raise _storage_failure(exc, path, filename) from exc
        except OSError as exc:  # the staging copy could not be written (disk full…)
            raise TransientError(f"{label}: cannot make a local copy of {where}: {exc}") from exc
        if not os.access(local, os.R_OK):
            raise IngestError(f"{label}: no permission to read {local}")
        yield local
