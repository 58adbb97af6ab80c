"""Exporting files to downstream servers (the archive) over HTTP, verified by md5."""

from fits_storage.export.client import (
    AUTH_COOKIE,
    BadAnswer,
    DestinationClient,
    DestinationRefused,
    DestinationUnavailable,
    UploadServerError,
)
from fits_storage.export.destinations import DestinationHealth
from fits_storage.export.exporter import (
    Exporter,
    ExportFailed,
    ExportSettings,
    Outcome,
    default_spool_dir,
    present_diskfile,
    remote_name_for,
)
from fits_storage.export.selection import queue_exports
from fits_storage.export.spool import BZ2_LEVEL, Payload, bz2_chunks, spool_compressed

__all__ = [
    "AUTH_COOKIE",
    "BZ2_LEVEL",
    "BadAnswer",
    "DestinationClient",
    "DestinationHealth",
    "DestinationRefused",
    "DestinationUnavailable",
    "ExportFailed",
    "ExportSettings",
    "Exporter",
    "Outcome",
    "Payload",
    "UploadServerError",
    "bz2_chunks",
    "default_spool_dir",
    "present_diskfile",
    "queue_exports",
    "remote_name_for",
    "spool_compressed",
]
