"""The queues of the system: one line each. Adding a queue means adding its table and a line."""

from __future__ import annotations

from dataclasses import dataclass

from fits_storage.config import Config
from fits_storage.orm.queues import (
    CalCacheQueue,
    ExportQueue,
    IngestQueue,
    PreviewQueue,
    QueueEntryMixin,
    UploadQueue,
)
from fits_storage.queues.engine import Backoff, Queue


@dataclass(frozen=True)
class QueueDefinition:
    model: type[QueueEntryMixin]
    # Entries sharing these columns are never in progress at the same time.
    exclusive: tuple[str, ...] = ("filename",)


DEFINITIONS: dict[str, QueueDefinition] = {
    "ingest": QueueDefinition(IngestQueue),
    "export": QueueDefinition(ExportQueue, exclusive=("filename", "destination")),
    "preview": QueueDefinition(PreviewQueue),
    "calcache": QueueDefinition(CalCacheQueue),
    "upload": QueueDefinition(UploadQueue),
}


def get_queue(name: str, config: Config, backoff: Backoff | None = None) -> Queue:
    """The queue called ``name`` with the lease and retry settings of ``config``."""
    definition = DEFINITIONS[name]
    return Queue(
        definition.model,
        exclusive=definition.exclusive,
        lease_seconds=config.queue_lease_seconds,
        max_attempts=config.queue_max_attempts,
        backoff=backoff,
    )
