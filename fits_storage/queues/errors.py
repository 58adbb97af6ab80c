"""Exceptions that tell the queue engine how a failure should be treated."""


class QueueError(Exception):
    """Base of this package's exceptions."""


class TransientError(QueueError):
    """Worth retrying by itself later (network down, destination busy, file still pending).

    ``delay`` asks for a specific wait before the retry instead of the engine's backoff, and
    ``counts`` False means the retry does not use up one of ``queue_max_attempts`` (for
    waiting on something that is known to be progressing, like a pending ingest elsewhere).
    ``quiet`` logs the retry at DEBUG: for hand-backs that repeat for every entry of a backlog
    (a destination already known to be down) and would otherwise flood the log.
    """

    def __init__(
        self,
        message: str,
        *,
        delay: float | None = None,
        counts: bool = True,
        quiet: bool = False,
    ):
        super().__init__(message)
        self.delay = delay
        self.counts = counts
        self.quiet = quiet


class PermanentError(QueueError):
    """Retrying will not help; the entry is failed and waits for a human or a re-add."""
