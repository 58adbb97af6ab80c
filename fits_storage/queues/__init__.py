"""The one queue engine, and the definitions of the system's queues."""

from fits_storage.queues.context import WorkContext
from fits_storage.queues.definitions import DEFINITIONS, get_queue
from fits_storage.queues.engine import Backoff, Entry, Queue, QueueCounts, Worker
from fits_storage.queues.errors import PermanentError, RunTimeExceeded, TransientError
from fits_storage.queues.status import Status

__all__ = [
    "DEFINITIONS",
    "Backoff",
    "Entry",
    "PermanentError",
    "Queue",
    "QueueCounts",
    "RunTimeExceeded",
    "Status",
    "TransientError",
    "WorkContext",
    "Worker",
    "get_queue",
]
