"""Why an ingest did not happen, in the terms the queue engine acts on."""

from fits_storage.queues.errors import PermanentError, TransientError


class IngestError(PermanentError):
    """Bad input (missing, unreadable, truncated, corrupt, not FITS): retrying will not help.

    The message is one line naming the file and the reason, fit for the queue status page.
    """


class FileMissingError(IngestError):
    """The file is not in the data store (any more): its present version, if any, is not."""


class FileChangingError(TransientError):
    """The file changed while it was being read (still being written): try again shortly."""
