"""Exceptions that tell the queue engine how a failure should be treated."""


class QueueError(Exception):
    """Base of this package's exceptions."""


class TransientError(QueueError):
    """Worth retrying by itself later (network down, destination busy, file still pending).

    ``delay`` asks for a specific wait before the retry instead of the engine's backoff, and
    ``counts`` False means the retry does not use up one of ``queue_max_attempts`` (for
    waiting on something that is known to be progressing, like a pending ingest elsewhere).
    ``quiet`` logs the retry at DEBUG: for hand-backs that repeat for every entry of a backlog
    (a destination already known to be down) and would otherwise flood the log. ``alike`` names
    columns: every waiting entry sharing their values with this one is deferred as long, in one
    statement (the whole backlog of a destination that is down).
    """

    def __init__(
        self,
        message: str,
        *,
        delay: float | None = None,
        counts: bool = True,
        quiet: bool = False,
        alike: tuple[str, ...] = (),
    ):
        super().__init__(message)
        self.delay = delay
        self.counts = counts
        self.quiet = quiet
        self.alike = alike


class PermanentError(QueueError):
    """Retrying will not help; the entry is failed and waits for a human or a re-add."""


class RunTimeExceeded(BaseException):
    """Raised inside a work that ran past ``queue_max_run_seconds``: the entry is failed.

    A ``BaseException``, like ``KeyboardInterrupt``, so that a work's own ``except Exception``
    cannot swallow it and carry on holding the entry.
    """
