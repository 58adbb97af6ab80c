"""The one exception of the calibration package."""

from fits_storage.queues.errors import PermanentError


class CalCacheError(PermanentError):
    """The entry's file cannot be associated (not ingested, no header); the message says
    why. Permanent: a re-add after its ingest clears it."""
