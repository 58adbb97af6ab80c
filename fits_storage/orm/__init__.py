"""Every table of the system; importing this module registers them all on ``Base.metadata``."""

from fits_storage.orm.base import Base, utcnow
from fits_storage.orm.calcache import CalCache, CalCacheStamp
from fits_storage.orm.file import DiskFile, DiskFileReport, File, FullTextHeader, Header
from fits_storage.orm.preview import Preview, PreviewNote
from fits_storage.orm.queues import (
    CalCacheQueue,
    ExportQueue,
    FileopsQueue,
    IngestQueue,
    PreviewQueue,
    QueueEntryMixin,
    UploadQueue,
)
from fits_storage.orm.staff import StaffAudit, StaffUser
from fits_storage.orm.summit import MiscFile, Obslog
from fits_storage.orm.updatelog import UpdateLog
from fits_storage.orm.upload import FileUploadLog
from fits_storage.orm.workers import QueueWorker

__all__ = [
    "Base",
    "CalCacheQueue",
    "DiskFile",
    "DiskFileReport",
    "ExportQueue",
    "File",
    "FileUploadLog",
    "FullTextHeader",
    "Header",
    "IngestQueue",
    "PreviewQueue",
    "QueueEntryMixin",
    "UploadQueue",
    "utcnow",
    "QueueWorker",
    "StaffAudit",
    "StaffUser",
    "Preview",
    "PreviewNote",
    "CalCache",
    "CalCacheStamp",
    "FileopsQueue",
    "UpdateLog",
    "Obslog",
    "MiscFile",
]
