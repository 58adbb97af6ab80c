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

# Queues whose work can always be redone from the stored files (ingest reads them; previews and
# calibration associations are derived from what ingest recorded): their workers commit
# without waiting for the disk (``make_engine(synchronous_commit=False)``). A completion lost
# in a database crash rolls back with the rows it completed, and the entry is handed out
# again. The others wait: an export or a header edit has effects outside the database.
REDOABLE = frozenset({"ingest", "preview", "calcache"})


def get_queue(name: str, config: Config, backoff: Backoff | None = None) -> Queue:
    """The queue called ``name`` with the lease and retry settings of ``config``."""
    return Queue(
        DEFINITIONS[name],
        lease_seconds=config.queue_lease_seconds,
        max_attempts=config.queue_max_attempts,
        max_run_seconds=config.queue_max_run_seconds,
        backoff=backoff,
    )
