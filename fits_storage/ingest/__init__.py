"""Ingest of one file into the database (``file``, ``diskfile``, ``header`` and reports)."""

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
