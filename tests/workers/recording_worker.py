"""A real queue worker process for the engine's concurrency and crash tests.

Its work records the entry in the table ``processed`` inside the same transaction that
completes the entry, so a test can check the exact multiset of effects. ``TEST_WORK_SECONDS``
makes each item take up to that long (randomly), to widen the windows a kill can hit;
``TEST_FAIL`` names files (comma-separated) whose work fails; ``TEST_HANG`` names a file whose
work hangs where no signal can reach it (as in an uninterruptible NFS read);
``TEST_PRELOAD`` names a module the worker must import before its first claim;
``TEST_RECORD_SYNC`` (PostgreSQL) records the work session's ``synchronous_commit`` and
``plan_cache_mode`` as its worker; ``TEST_RECORD_GC`` whether the preloaded module's objects
are left out of the cyclic collector's scans (frozen at start-up).
"""

from __future__ import annotations

import gc
import os
import random
import signal
import sys
import time

from sqlalchemy import text
from sqlalchemy.orm import Session

from fits_storage.queues import Entry, TransientError, WorkContext
from fits_storage.service.queue_service import run_queue_service

CREATE = "CREATE TABLE IF NOT EXISTS processed (filename VARCHAR(255), worker VARCHAR(255))"


def work(session: Session, entry: Entry, context: WorkContext) -> None:
    transient = os.environ.get("TEST_TRANSIENT")  # "loud" or "quiet": hand every entry back
    if transient:
        raise TransientError("destination down", delay=60, counts=False, quiet=transient == "quiet")
    if entry.filename in os.environ.get("TEST_FAIL", "").split(","):
        raise ValueError("broken file")
    if entry.filename == os.environ.get("TEST_HANG"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(600)
    seconds = float(os.environ.get("TEST_WORK_SECONDS", "0"))
    if seconds:
        time.sleep(seconds if os.environ.get("TEST_WORK_FIXED") else random.uniform(0, seconds))
    who = context.worker.name
    if os.environ.get("TEST_RECORD_SYNC"):
        sync = session.execute(text("SHOW synchronous_commit")).scalar_one()
        who = f"{sync} {session.execute(text('SHOW plan_cache_mode')).scalar_one()}"
    if os.environ.get("TEST_RECORD_GC"):
        namespace = vars(sys.modules[os.environ["TEST_PRELOAD"]])
        scanned = any(o is namespace for o in gc.get_objects())
        who = f"frozen {gc.get_freeze_count() > 0} scanned {scanned}"
    session.execute(
        text("INSERT INTO processed (filename, worker) VALUES (:f, :w)"),
        {"f": entry.filename, "w": who},
    )


def main() -> int:
    queue = os.environ.get("TEST_QUEUE", "preview")
    preload = tuple(filter(None, [os.environ.get("TEST_PRELOAD")]))
    return run_queue_service(
        "recording_worker", queue, work, description=__doc__, argv=sys.argv[1:], preload=preload
    )


if __name__ == "__main__":
    sys.exit(main())
