"""The queues of the system: one line each. Adding a queue means adding its table and a line."""

from __future__ import annotations

from fits_storage.config import Config
from fits_storage.orm.queues import (
    CalCacheQueue,
    ExportQueue,
    FileopsQueue,
    IngestQueue,
    PreviewQueue,
    QueueEntryMixin,
    UploadQueue,
)
from fits_storage.queues.engine import Backoff, Queue

DEFINITIONS: dict[str, type[QueueEntryMixin]] = {
    "ingest": IngestQueue,
    "export": ExportQueue,
    "preview": PreviewQueue,
    "calcache": CalCacheQueue,
    "upload": UploadQueue,
    "fileops": FileopsQueue,
}


def get_queue(name: str, config: Config, backoff: Backoff | None = None) -> Queue:
    """The queue called ``name`` with the lease and retry settings of ``config``."""
    return Queue(
        DEFINITIONS[name],
        lease_seconds=config.queue_lease_seconds,
        max_attempts=config.queue_max_attempts,
        max_run_seconds=config.queue_max_run_seconds,
        backoff=backoff,
    )
