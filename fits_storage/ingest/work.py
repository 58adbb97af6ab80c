"""The ingest queue's work function, called by the shared queue worker loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from fits_storage.ingest.ingest import ingest_file
from fits_storage.ingest.readahead import Prepared
from fits_storage.ingest.rows import Completion
from fits_storage.queues import Entry

if TYPE_CHECKING:
    from fits_storage.queues import WorkContext


def ingest_work(session: Session, entry: Entry, context: WorkContext) -> None:
    """Ingest the entry's file and log one line saying what happened.

    Bad input raises IngestError (the entry fails with its reason); a file still being
    written raises FileChangingError (retried). The loop commits our writes with the
    entry's completion, unless ingest wrote both in one statement (a new name on PostgreSQL),
    which then also leases the next entry when the loop asks for one, reads the present
    version of its file and names the entry after it, whose file is read meanwhile: all handed
    to the ingest of the entry leased.
    """
    prepared = context.take_hint(entry)
    result = ingest_file(
        session,
        context.config,
        entry.filename,
        entry.path,
        force=bool(entry["force"]),
        force_md5=bool(entry["force_md5"]),
        completing=Completion(context.queue("ingest"), entry, claim_for=context.claim_for),
        prepared=prepared if isinstance(prepared, Prepared) else None,
    )
    if result.completed:
        context.entry_completed(entry, result.claimed, hint=result.prepared_next)
    context.logger.info("%s", result.describe())
