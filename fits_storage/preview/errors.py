"""The one exception of the preview package."""

from fits_storage.queues.errors import PermanentError


class PreviewError(PermanentError):
    """The file cannot be drawn (truncated, corrupt, unreadable); the message says why.

    Permanent: retrying reads the same bytes. Only this file's entry fails."""
