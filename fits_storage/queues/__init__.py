"""The one queue engine, and the definitions of the system's queues.

Each name is imported at its first use, so that ``fits_storage.queues.errors`` (which a command
may need before it does any work) does not bring in the engine and the ORM with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fits_storage.lazy import lazy_names

if TYPE_CHECKING:
    from fits_storage.queues.context import WorkContext
    from fits_storage.queues.definitions import DEFINITIONS, get_queue
    from fits_storage.queues.engine import Backoff, Entry, Queue, QueueCounts, Worker
    from fits_storage.queues.errors import PermanentError, RunTimeExceeded, TransientError
    from fits_storage.queues.status import Status

_HOME = {
    "WorkContext": "context",
    "DEFINITIONS": "definitions",
    "get_queue": "definitions",
    "Backoff": "engine",
    "Entry": "engine",
    "Queue": "engine",
    "QueueCounts": "engine",
    "Worker": "engine",
    "PermanentError": "errors",
    "RunTimeExceeded": "errors",
    "TransientError": "errors",
    "Status": "status",
}

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


__getattr__ = lazy_names(__name__, _HOME)
