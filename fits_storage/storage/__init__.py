"""Where file bytes live: a directory tree or an S3 bucket, behind one small interface.

``get_store(config)`` gives the data store the configuration names (S3 when ``using_s3``).
"""

from __future__ import annotations

from pathlib import Path

from fits_storage.config import Config
from fits_storage.storage.atomic import AtomicFile, copy_atomic
from fits_storage.storage.base import (
    CHUNK,
    FileStat,
    Md5Mismatch,
    NotInStore,
    StorageError,
    StorageUnavailable,
    Store,
    StoredFile,
    file_md5,
)
from fits_storage.storage.local import LocalStore
from fits_storage.storage.names import (
    BadName,
    ReservedName,
    check_path,
    check_unreserved,
    relative_name,
    reserved_within,
    split_target,
)


def get_store(config: Config) -> Store:
    """The data store of this configuration."""
    if config.using_s3:
        from fits_storage.storage.s3 import S3Store

        return S3Store(config.s3_bucket_name, config.s3_endpoint_url or None)
    return LocalStore(
        config.storage_root,
        reserved_within(config.storage_root, config.system_paths()),
        config.file_mode,
    )


def check_data_name(config: Config, filename: str, path: str = "") -> str:
    """``path/filename`` if it may name data: the checked alphabet, and reaching none of the
    system's own files where data names become paths (storage_root, upload_staging_dir)."""
    name = relative_name(filename, path)
    owned = config.system_paths()
    for root in (config.storage_root, config.upload_staging_dir):
        check_unreserved(name, reserved_within(root, owned))
    return name


def staged_path(config: Config, filename: str, path: str = "") -> Path:
    """Where an upload of ``path/filename`` is staged (the name checked as data)."""
    return config.upload_staging_dir / check_data_name(config, filename, path)


__all__ = [
    "CHUNK",
    "AtomicFile",
    "BadName",
    "FileStat",
    "LocalStore",
    "Md5Mismatch",
    "NotInStore",
    "ReservedName",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "StoredFile",
    "check_data_name",
    "check_path",
    "copy_atomic",
    "file_md5",
    "get_store",
    "relative_name",
    "split_target",
    "staged_path",
]
