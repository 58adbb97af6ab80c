"""A statement that runs in a helper thread while this thread does other work.

A round trip to PostgreSQL from a busy worker costs 1-3 ms of wall time on a virtual machine,
most of it the server's process being woken, little of it work on either side. A queue worker
can spend that time on its next item instead (ingest reads the next file while its write
runs). The helper thread only sends the statement and waits for its answer, with the
interpreter's lock released; the interpreter is asked to switch threads every 0.2 ms
meanwhile (instead of every 5), so that the helper sends the statement at once and takes its
answer when it comes rather than when this thread next pauses.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

SWITCH_INTERVAL_SECONDS = 0.0002

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    """This process's helper (a forked child makes its own)."""
    with _lock:
        pool = _pools.get(os.getpid())
        if pool is None:
            pool = _pools[os.getpid()] = ThreadPoolExecutor(1, thread_name_prefix="statement")
        return pool


@contextmanager
def _switching_often() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL_SECONDS))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def overlapped(
    statement: Callable[[], T],
    meanwhile: Callable[[], object],
    cancel: Callable[[], object],
    *,
    spare: tuple[type[BaseException], ...] = (),
) -> T:
    """``statement()`` in the helper thread while ``meanwhile()`` runs in this one: the
    statement's result, or its exception.

    ``meanwhile`` should not raise; if it does, the statement is still waited for (it may
    have written), then the exception is raised. If this thread is interrupted (the worker's
    run-time limit, a KeyboardInterrupt: anything that is not an ``Exception``), ``cancel()``
    first asks the server to stop the statement, as the run-time limit does for a statement of
    this thread. ``spare``: interruptions that cut ``meanwhile`` short but not the statement:
    if it succeeds all the same (it had finished, or the cancel came too late), its result is
    returned (``meanwhile`` is optional work, and what the statement did stands)."""
    future: Future[T] = _pool().submit(statement)
    try:
        with _switching_often():
            meanwhile()
            return future.result()
    except BaseException as exc:
        if not future.done() and not isinstance(exc, Exception):
            cancel()
        failed = future.exception()  # waited for: the connection is free again, whatever it did
        if failed is None and isinstance(exc, spare):
            return future.result()  # it did its work all the same (done, or cancelled too late)
        raise
