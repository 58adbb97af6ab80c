"""A worker's row in the registry, kept current by a thread of its own (``queues.registry``).

The thread registers the process, then every ``beat_interval`` writes its heartbeat and counters;
on a clean stop it writes them a last time with the row marked stopped. A database outage only
delays the writes: the thread keeps trying and the work goes on.
"""

from __future__ import annotations

import threading

from fits_storage.queues import Worker
from fits_storage.queues.registry import WorkerStats, beat, beat_interval, register
from fits_storage.service.daemon import Daemon
from fits_storage.service.logs import one_line


class Registration(threading.Thread):
    def __init__(self, daemon: Daemon, worker: Worker, queue: str, stats: WorkerStats) -> None:
        super().__init__(name="registration", daemon=True)
        self.daemon, self.worker, self.queue, self.stats = daemon, worker, queue, stats
        self.interval = beat_interval(daemon.config.queue_lease_seconds)
        self.row_id: int | None = None
        self._finished = threading.Event()
        self._warned = False

    def run(self) -> None:
        while True:
            self._write()
            if self._finished.wait(self.interval):
                return

    def _write(self, *, stopping: bool = False) -> None:
        try:
            with self.daemon.session_factory() as session:
                if self.row_id is None:
                    if stopping:
                        return
                    self.row_id = register(
                        session, self.worker, self.queue, self.interval, self.stats
                    )
                else:
                    beat(session, self.row_id, self.stats, stopping=stopping)
                session.commit()
            self._warned = False
        except Exception as exc:  # noqa: BLE001 - the work goes on; the next beat tries again
            if not self._warned:
                message = "could not update the worker registry: %s"
                self.daemon.logger.warning(message, one_line(exc))
                self._warned = True

    def stop(self) -> None:
        """Stop beating and mark the row stopped, with the final counters."""
        self._finished.set()
        if self.is_alive():
            self.join(timeout=30)
        self._write(stopping=True)
