"""Ingest of one file into the database (``file``, ``diskfile``, ``header`` and reports).

Each name is imported at its first use, so that the read-ahead process (which needs only
``fitsread``) does not bring in the ORM and the queue engine with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fits_storage.ingest.errors import FileChangingError, FileMissingError, IngestError
    from fits_storage.ingest.ingest import (
        IngestAction,
        IngestResult,
        fan_out,
        file_name_for,
        ingest_file,
        mark_not_present,
    )
    from fits_storage.ingest.work import ingest_work

_HOME = {
    "FileChangingError": "errors",
    "FileMissingError": "errors",
    "IngestError": "errors",
    "IngestAction": "ingest",
    "IngestResult": "ingest",
    "fan_out": "ingest",
    "file_name_for": "ingest",
    "ingest_file": "ingest",
    "mark_not_present": "ingest",
    "ingest_work": "work",
}

__all__ = [
    "FileChangingError",
    "FileMissingError",
    "IngestAction",
    "IngestError",
    "IngestResult",
    "fan_out",
    "file_name_for",
    "ingest_file",
    "ingest_work",
    "mark_not_present",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
