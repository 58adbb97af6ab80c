"""service_ingest_queue: ingest the files of the ingest queue into the database.

Run several instances (``--name=siq1``, ``--name=siq2``) to work through a backlog faster; the
queue engine hands each file to one of them at a time.

Deferral happens here, at the moment a file is about to be read, not when it is queued: entries
arrive from copy_from_dhs, cron, the ODB's QA updates and uploads, and a file queued long ago
may have been touched a second before its turn. A file modified within ``defer_threshold``
seconds is put back for ``defer_delay`` seconds (without using up a retry attempt) instead of
being read half-written. ``--no-defer`` turns that off. Entries whose producer wrote the file
atomically itself (``ingest_uploaded_file``, ``copy_from_dhs``) are marked complete and never
deferred: they cannot be half-written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

from fits_storage.queues.errors import TransientError
from fits_storage.service.queue_service import run_queue_service

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from fits_storage.queues import Entry, WorkContext

COMMAND = "service_ingest_queue"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-defer",
        dest="no_defer",
        action="store_true",
        help="ingest files at once even if they were modified within defer_threshold seconds",
    )


def recently_modified(context: WorkContext, entry: Entry) -> float | None:
    """Seconds since the stored file was modified, if that is within defer_threshold."""
    config = context.config
    if config.using_s3 or config.defer_threshold <= 0:
        return None  # bytes in S3 were put there complete and verified
    try:
        mtime = os.stat(config.storage_root / entry.path / entry.filename).st_mtime
    except OSError:
        return None  # missing or unreadable: ingest reports it properly
    age = time.time() - mtime
    return age if age < config.defer_threshold else None


def work(session: Session, entry: Entry, context: WorkContext) -> None:
    """Defer files still being modified (unless their producer wrote them whole), then ingest."""
    from fits_storage.ingest import ingest_work  # preloaded before the first claim (astropy)

    if not (context.args.no_defer or entry["complete"]):
        age = recently_modified(context, entry)
        if age is not None:
            config = context.config
            raise TransientError(
                f"modified {max(age, 0):.1f}s ago (defer_threshold {config.defer_threshold:g}s): "
                f"deferred by {config.defer_delay:g}s",
                delay=config.defer_delay,
                counts=False,
            )
    ingest_work(session, entry, context)


def main(argv: list[str] | None = None) -> int:
    return run_queue_service(
        COMMAND,
        "ingest",
        work,
        description="Ingest the files of the ingest queue into the database (file, diskfile, "
        "header rows), then queue their export, preview and calibration-cache work.",
        add_arguments=add_arguments,
        argv=argv,
        preload=("fits_storage.ingest",),
    )


if __name__ == "__main__":
    sys.exit(main())
