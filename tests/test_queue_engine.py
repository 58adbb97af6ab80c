"""The queue contract (docs/architecture.md §3, docs/queues.md), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fits_storage.db.clock import server_now
from fits_storage.orm.base import utcnow
from fits_storage.orm.queues import ExportQueue, IngestQueue
from fits_storage.queues import Backoff, Queue, Status, Worker
from fits_storage.queues.sortkey import sortkey_for_filename

W1 = Worker("w1")
W2 = Worker("w2")


def ingest_queue(**kwargs) -> Queue:
    kwargs.setdefault("lease_seconds", 30)
    return Queue(IngestQueue, backoff=Backoff(0.01, 0.05), **kwargs)


def claim(session: Session, queue: Queue, worker: Worker = W1):
    entry = queue.claim(session, worker)
    session.commit()
    return entry


def test_sortkey_puts_newest_observation_first() -> None:
    names = ["N20251123S0042.fits", "N20251124S0001.fits", "S20251123S0100.fits.bz2", "zz.fits"]
    ordered = sorted(names, key=sortkey_for_filename, reverse=True)
    assert ordered == [
        "N20251124S0001.fits",
        "S20251123S0100.fits.bz2",
        "N20251123S0042.fits",
        "zz.fits",
    ]


def test_one_waiting_entry_per_file_enforced_by_database(session: Session) -> None:
    queue = ingest_queue()
    assert queue.add(session, "N20251123S0001.fits", "a")
    assert not queue.add(session, "N20251123S0001.fits", "a")
    assert queue.add(session, "N20251123S0001.fits", "b")  # same name, other folder
    session.commit()
    assert queue.counts(session).waiting == 2


def test_bulk_add_reports_only_new_entries(session: Session) -> None:
    queue = ingest_queue()
    names = [{"filename": f"N20251123S{i:04d}.fits"} for i in range(2500)]
    assert queue.add_many(session, names[:1000]) == 1000
    assert queue.add_many(session, names + names[:10]) == 1500
    session.commit()
    assert queue.counts(session).waiting == 2500
    twice = [{"filename": "a.fits"}, {"filename": "a.fits"}, {"filename": "b.fits", "force": True}]
    assert queue.add_many(session, twice) == 2  # duplicates within one statement too


def test_claims_newest_first_and_once(session: Session) -> None:
    queue = ingest_queue()
    for name in ["N20251120S0001.fits", "N20251123S0002.fits", "N20251121S0003.fits"]:
        queue.add(session, name)
    session.commit()
    got = [claim(session, queue).filename for _ in range(3)]
    assert got == ["N20251123S0002.fits", "N20251121S0003.fits", "N20251120S0001.fits"]
    assert claim(session, queue) is None
    assert queue.counts(session).in_progress == 3


def test_entry_records_lease_holder(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "a.fits", force=True)
    session.commit()
    entry = claim(session, queue)
    assert entry["worker"] == "w1" and entry["pid"] == W1.pid and entry["host"] == W1.host
    assert entry["force"] is True and entry.attempts == 1


def test_file_readded_while_in_progress_waits_for_first_pass(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "a.fits")
    session.commit()
    first = claim(session, queue)
    assert queue.add(session, "a.fits")  # re-added while in progress: a new waiting entry
    session.commit()
    assert claim(session, queue, W2) is None  # not handed out while the first is in progress
    assert queue.complete(session, first)
    session.commit()
    second = claim(session, queue, W2)
    assert second is not None and second.id != first.id


def test_failure_keeps_error_and_traceback_success_removes_it(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "a.fits")
    session.commit()
    entry = claim(session, queue)
    assert queue.fail(session, entry, "bad file", "Traceback (most recent call last): ...")
    session.commit()
    [failed] = queue.entries(session, Status.FAILED)
    assert failed["error"] == "bad file" and failed["traceback"].startswith("Traceback")
    assert queue.counts(session).failed == 1
    queue.add(session, "a.fits")
    session.commit()
    entry = claim(session, queue)
    assert queue.complete(session, entry)
    session.commit()
    assert queue.counts(session).total == 0


def test_after_defers_an_entry(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "a.fits", after=utcnow() + timedelta(seconds=0.5))
    session.commit()
    assert claim(session, queue) is None
    time.sleep(0.6)
    assert claim(session, queue).filename == "a.fits"


def test_transient_failure_retries_with_backoff_then_fails(session: Session) -> None:
    """Each retry waits base * 2**(attempt-1), scaled by 50-100%, by the database's clock."""
    queue = Queue(IngestQueue, lease_seconds=30, max_attempts=3, backoff=Backoff(100, 1000))
    queue.add(session, "a.fits")
    session.commit()
    for attempt, longest in ((1, 100), (2, 200)):
        entry = claim(session, queue)
        assert entry.attempts == attempt
        assert queue.retry(session, entry, "network down")
        session.commit()
        assert claim(session, queue) is None  # backing off
        after, now = session.execute(
            select(IngestQueue.after, server_now()).where(IngestQueue.filename == "a.fits")
        ).one()
        seconds = (after - now).total_seconds()
        assert longest / 2 - 5 <= seconds <= longest, (attempt, seconds)
        session.execute(update(IngestQueue).values(after=None))  # as if that time had passed
        session.commit()
    entry = claim(session, queue)
    assert entry.attempts == 3
    assert not queue.retry(session, entry, "network down")
    session.commit()
    [failed] = queue.entries(session, Status.FAILED)
    assert failed["error"] == "gave up after 3 attempts: network down"


def test_retry_superseded_by_readd_leaves_one_waiting_entry(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "a.fits")
    session.commit()
    entry = claim(session, queue)
    queue.add(session, "a.fits")
    session.commit()
    assert not queue.retry(session, entry, "transient")
    session.commit()
    assert queue.counts(session).waiting == 1 and queue.counts(session).in_progress == 0


def test_stale_lease_is_handed_out_again_and_old_holder_is_fenced(session: Session) -> None:
    queue = ingest_queue(lease_seconds=0.3)
    queue.add(session, "a.fits")
    session.commit()
    lost = claim(session, queue, W1)
    assert claim(session, queue, W2) is None
    time.sleep(0.4)
    rescued = claim(session, queue, W2)
    assert rescued.id == lost.id and rescued.attempts == 2 and rescued.worker == "w2"
    # The first worker comes back to life: it can no longer touch the entry.
    assert not queue.heartbeat(session, lost)
    assert not queue.complete(session, lost)
    assert not queue.fail(session, lost, "late")
    assert queue.complete(session, rescued)
    session.commit()
    assert queue.counts(session).total == 0


def test_heartbeat_keeps_lease(session: Session) -> None:
    queue = ingest_queue(lease_seconds=0.5)
    queue.add(session, "a.fits")
    session.commit()
    entry = claim(session, queue)
    for _ in range(4):
        time.sleep(0.2)
        assert queue.heartbeat(session, entry)
        session.commit()
    assert claim(session, queue, W2) is None


def test_entry_whose_workers_keep_dying_is_failed(session: Session) -> None:
    queue = ingest_queue(lease_seconds=0.2, max_attempts=2)
    queue.add(session, "poison.fits")
    session.commit()
    assert claim(session, queue).attempts == 1
    time.sleep(0.3)
    assert claim(session, queue).attempts == 2
    time.sleep(0.3)
    assert claim(session, queue) is None
    [failed] = queue.entries(session, Status.FAILED)
    assert "worker stopped 2 times" in failed["error"]


def test_release_gives_entry_back_without_using_an_attempt(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "a.fits")
    session.commit()
    entry = claim(session, queue)
    assert queue.release(session, entry)
    session.commit()
    assert claim(session, queue).attempts == 1


def test_export_queue_keys_on_destination(session: Session) -> None:
    queue = Queue(ExportQueue)
    assert queue.add(session, "a.fits", destination="https://one")
    assert queue.add(session, "a.fits", destination="https://two")
    assert not queue.add(session, "a.fits", destination="https://two")
    session.commit()
    first, second = claim(session, queue), claim(session, queue, W2)
    assert {first["destination"], second["destination"]} == {"https://one", "https://two"}


def test_unknown_extra_column_is_refused(session: Session) -> None:
    with pytest.raises(TypeError, match="no column"):
        ingest_queue().add(session, "a.fits", destination="x")


def test_counts_report_oldest_waiting(session: Session) -> None:
    queue = ingest_queue()
    before = utcnow()
    queue.add(session, "a.fits")
    queue.add(session, "b.fits")
    session.commit()
    claim(session, queue)
    counts = queue.counts(session)
    assert (counts.waiting, counts.in_progress, counts.failed) == (1, 1, 0)
    assert counts.oldest_waiting >= before.replace(microsecond=0) - timedelta(seconds=1)


def test_complete_and_claim_hands_over_to_the_next_entry(session: Session) -> None:
    queue = ingest_queue()
    names = ["N20251120S0001.fits", "N20251123S0002.fits", "N20251121S0003.fits"]
    queue.add_many(session, [{"filename": n, "force": True} for n in names])
    session.commit()
    entry = claim(session, queue)
    got = [entry.filename]
    while entry is not None:
        completed, entry = queue.complete_and_claim(session, entry, W1)
        session.commit()
        assert completed
        if entry is not None:
            got.append(entry.filename)
            assert entry.attempts == 1 and entry["worker"] == "w1" and entry["force"] is True
            assert queue.counts(session).in_progress == 1
    assert got == ["N20251123S0002.fits", "N20251121S0003.fits", "N20251120S0001.fits"]
    assert queue.counts(session).total == 0


def test_complete_and_claim_also_removes_the_files_earlier_failures(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "a.fits")
    session.commit()
    assert queue.fail(session, claim(session, queue), "bad")
    queue.add(session, "a.fits")
    session.commit()
    completed, following = queue.complete_and_claim(session, claim(session, queue), W1)
    session.commit()
    assert completed and following is None
    assert queue.counts(session).total == 0


def test_complete_and_claim_after_a_lost_lease_claims_nothing(session: Session) -> None:
    slow = ingest_queue(lease_seconds=30)  # its own dead-worker sweep is not due again soon
    rescuer = ingest_queue(lease_seconds=0.3)
    slow.add(session, "N20251120S0001.fits")
    slow.add(session, "N20251123S0002.fits")
    session.commit()
    lost = claim(session, slow, W1)
    time.sleep(0.4)
    rescued = claim(session, rescuer, W2)
    assert rescued.id == lost.id
    assert slow.complete_and_claim(session, lost, W1) == (False, None)
    session.rollback()
    counts = slow.counts(session)
    assert (counts.waiting, counts.in_progress) == (1, 1)  # nothing taken by the fenced worker


def test_complete_and_claim_rescues_a_dead_workers_entry_when_the_sweep_is_due(
    session: Session,
) -> None:
    queue = ingest_queue(lease_seconds=0.3)
    queue.add(session, "N20251123S0002.fits")
    queue.add(session, "N20251120S0001.fits")
    session.commit()
    dead = claim(session, queue, W2)  # the newest; W2 then dies holding it
    mine = claim(session, queue, W1)
    time.sleep(0.4)
    completed, following = queue.complete_and_claim(session, mine, W1)
    session.commit()
    assert completed and following is not None
    assert following.id == dead.id and following.attempts == 2 and following["worker"] == "w1"


def test_complete_and_claim_keeps_a_readded_file_behind_its_first_pass(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "z.fits")
    session.commit()
    first = claim(session, queue)
    queue.add(session, "z.fits")  # re-added while in progress
    queue.add(session, "a.fits")
    session.commit()
    handed: list[tuple[str, int]] = []
    entry = first
    while entry is not None:
        completed, entry = queue.complete_and_claim(session, entry, W1)
        session.commit()
        assert completed
        if entry is not None:
            assert entry.id != first.id
            handed.append((entry.filename, entry.attempts))
    assert sorted(handed) == [("a.fits", 1), ("z.fits", 1)]
    assert queue.counts(session).total == 0
