"""What a work function receives besides its session and entry.

It sits with the queue engine, below both the work modules and the daemon runner, so a work
module never needs to know about the daemon that calls it.
"""

from __future__ import annotations

import argparse
import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.queues.definitions import get_queue
from fits_storage.queues.engine import Entry, Queue, Worker


@dataclass
class WorkContext:
    config: Config
    logger: logging.Logger
    args: argparse.Namespace
    stopping: threading.Event
    session_factory: sessionmaker[Session]
    worker: Worker
    _queues: dict[str, Queue] = field(default_factory=dict)
    _completed: dict[int, Entry | None] = field(default_factory=dict)
    claim_for: Worker | None = None  # set by the loop: who a completion may lease the next entry to
    _hint: tuple[Entry, object] | None = None

    def queue(self, name: str) -> Queue:
        """Another queue of the system (to add work to it), with this process's settings."""
        if name not in self._queues:
            self._queues[name] = get_queue(name, self.config)
        return self._queues[name]

    def entry_completed(
        self, entry: Entry, claimed: Entry | None = None, *, hint: object = None
    ) -> None:
        """The work completed ``entry`` itself, in the statement that wrote its rows (ingest of
        a new name on PostgreSQL), and may have leased the next entry (``claimed``) there: the
        loop must not complete it again, only go on to the next. ``hint``: what that statement
        also read about ``claimed``, for the work on it (:meth:`take_hint`)."""
        self._completed[entry.id] = claimed
        self._hint = (claimed, hint) if claimed is not None and hint is not None else None

    def take_hint(self, entry: Entry) -> object:
        """The hint the work before gave for ``entry``, if ``entry`` is the very entry it
        leased (not the same row claimed again later), else None; given once."""
        hint, self._hint = self._hint, None
        return hint[1] if hint is not None and hint[0] is entry else None

    def take_completed(self, entry: Entry) -> tuple[bool, Entry | None]:
        """Whether the work said it completed ``entry``, and the entry it leased with it
        (asked once per entry)."""
        if entry.id not in self._completed:
            return False, None
        return True, self._completed.pop(entry.id)
