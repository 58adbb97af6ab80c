"""The queue's guards, on SQLite and PostgreSQL: one entry of a file in progress at a time,
lost leases that change nothing, the server's clock, and deferred entries kept out of claims."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.db.engine import make_engine
from fits_storage.orm.queues import ExportQueue, IngestQueue
from fits_storage.queues import Backoff, Queue, Status, Worker
from tests.conftest import IN_CI
from tests.processes import ROOT

W1, W2 = Worker("w1"), Worker("w2")


def ingest_queue(**settings: float) -> Queue:
    settings.setdefault("lease_seconds", 30)
    return Queue(IngestQueue, backoff=Backoff(0.01, 0.02), **settings)


def claim(session: Session, queue: Queue, worker: Worker = W1):  # type: ignore[no-untyped-def]
    entry = queue.claim(session, worker)
    session.commit()
    return entry


def in_progress(session: Session) -> list[tuple[str, str]]:
    return sorted(
        session.execute(
            select(IngestQueue.filename, IngestQueue.path).where(
                IngestQueue.status == Status.IN_PROGRESS
            )
        ).all()
    )


# -- one entry of a file in progress at a time -----------------------------------------------


def test_the_database_refuses_a_second_entry_of_a_file_in_progress(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "a.fits", "one")
    queue.add(session, "a.fits", "two")
    session.commit()
    claim(session, queue)
    with pytest.raises(IntegrityError):
        session.execute(
            update(IngestQueue)
            .where(IngestQueue.status == Status.WAITING)
            .values(status=Status.IN_PROGRESS)
        )
    session.rollback()


def test_a_claim_meeting_an_uncommitted_claim_of_the_same_file_moves_on(
    session_factory: sessionmaker[Session],
) -> None:
    """Two workers with open transactions: the second must not take the file's other entry."""
    queue = ingest_queue()
    with session_factory() as session:
        queue.add(session, "N20251123S0001.fits", "one")
        queue.add(session, "N20251123S0001.fits", "two")
        queue.add(session, "N20251120S0001.fits", "one")
        session.commit()
    first = session_factory()
    held = queue.claim(first, W1)  # not committed yet
    assert held.filename == "N20251123S0001.fits"
    got: list = []
    second_queue = ingest_queue()

    def second_claim() -> None:
        with session_factory() as second:
            got.append(second_queue.claim(second, W2))
            second.commit()

    other = threading.Thread(target=second_claim)
    other.start()
    other.join(1.0)  # it may wait for the first transaction (PostgreSQL's unique check, or
    # SQLite's write lock); either way it must not come back with the same file
    first.commit()
    first.close()
    other.join(30)
    assert not other.is_alive()
    assert got[0] is not None and got[0].filename == "N20251120S0001.fits"
    with session_factory() as session:
        assert in_progress(session) == [
            ("N20251120S0001.fits", "one"),
            ("N20251123S0001.fits", held.path),
        ]


def test_export_entries_of_one_file_for_two_destinations_run_together(session: Session) -> None:
    queue = Queue(ExportQueue)
    queue.add(session, "a.fits", destination="https://one")
    queue.add(session, "a.fits", "other", destination="https://one")
    queue.add(session, "a.fits", destination="https://two")
    session.commit()
    taken = [claim(session, queue), claim(session, queue, W2), claim(session, queue, W2)]
    assert sorted(e["destination"] for e in taken if e) == ["https://one", "https://two"]
    assert taken[2] is None


# -- a lost lease changes nothing -------------------------------------------------------------


def lose_lease(session: Session) -> tuple[Queue, object]:
    """a.fits failed once, was re-added and claimed by w1, whose lease then went to w2."""
    slow, rescuer = ingest_queue(lease_seconds=30), ingest_queue(lease_seconds=0.3)
    slow.add(session, "a.fits")
    session.commit()
    assert slow.fail(session, claim(session, slow), "bad the first time")
    slow.add(session, "a.fits")
    session.commit()
    lost = claim(session, slow, W1)
    time.sleep(0.4)
    assert claim(session, rescuer, W2).id == lost.id
    return slow, lost


def failures(session: Session) -> int:
    return len(session.execute(text("SELECT id FROM ingestqueue WHERE status = 'failed'")).all())


def test_a_completion_after_a_lost_lease_keeps_the_files_failures(
    session: Session, engine: Engine
) -> None:
    slow, lost = lose_lease(session)
    assert not slow.complete(session, lost)
    session.commit()  # even committed, it changed nothing
    assert failures(session) == 1
    if engine.dialect.name == "postgresql":  # the worker loop's autocommit paths
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            assert not slow.complete(conn, lost)
            slow._next_sweep = time.monotonic() + 60  # the one-statement finish_and_claim
            assert slow.complete_and_claim(conn, lost, W1) == (False, None)
        assert failures(session) == 1


def test_every_change_after_a_lost_lease_is_refused(session: Session) -> None:
    slow, lost = lose_lease(session)
    assert not slow.heartbeat(session, lost)
    assert not slow.fail(session, lost, "late")
    assert not slow.retry(session, lost, "late")
    assert not slow.release(session, lost)
    session.commit()
    [row] = session.execute(
        text(
            "SELECT status, worker, attempts FROM ingestqueue WHERE filename = 'a.fits' "
            "AND status = 'in_progress'"
        )
    ).all()
    assert tuple(row) == ("in_progress", "w2", 2)
    assert failures(session) == 1


# -- the server's clock -----------------------------------------------------------------------

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SKEWED_CLAIM = """
import sys
from sqlalchemy.orm import Session
from fits_storage.db.engine import make_engine
from fits_storage.orm.queues import IngestQueue
from fits_storage.queues import Queue, Worker
queue = Queue(IngestQueue, lease_seconds=30)
with Session(make_engine(sys.argv[1])) as session:
    entry = queue.claim(session, Worker("skewed"))
    session.commit()
print(entry.filename if entry else "nothing")
"""


def claim_from_a_skewed_host(db_url: str, offset: str) -> str:
    """Claim in a process whose every clock call is shifted by ``offset`` (libfaketime)."""
    if not os.path.exists(FAKETIME) or not shutil.which("faketime"):
        message = "libfaketime not installed (Debian package faketime)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    env = dict(os.environ, LD_PRELOAD=FAKETIME, FAKETIME=offset, PYTHONPATH=str(ROOT))
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", SKEWED_CLAIM, db_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def pg_session(pg_db_url: str):  # type: ignore[no-untyped-def]
    """PostgreSQL only: with SQLite the database's clock is the host's own (one host)."""
    engine = make_engine(pg_db_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_a_host_whose_clock_runs_ahead_cannot_steal_a_live_lease(
    pg_db_url: str, pg_session: Session
) -> None:
    session = pg_session
    queue = ingest_queue()
    queue.add(session, "a.fits")
    session.commit()
    held = claim(session, queue)
    assert queue.heartbeat(session, held)
    session.commit()
    assert claim_from_a_skewed_host(pg_db_url, "+90s") == "nothing"


def test_a_lease_taken_by_a_host_whose_clock_runs_behind_is_not_stale(
    pg_db_url: str, pg_session: Session
) -> None:
    session = pg_session
    queue = ingest_queue()
    queue.add(session, "a.fits")
    session.commit()
    assert claim_from_a_skewed_host(pg_db_url, "-90s") == "a.fits"
    assert claim(session, queue, W2) is None  # its lease is 30 s old by nobody's clock


# -- deferred entries -------------------------------------------------------------------------


def test_a_deferred_entry_is_ready_once_its_time_has_come(session: Session) -> None:
    queue = ingest_queue()
    queue.add(session, "N20251124S0001.fits")
    session.commit()
    entry = claim(session, queue)
    assert queue.retry(session, entry, "not yet", delay=0.3, counts=False)
    queue.add(session, "N20251120S0001.fits")
    session.commit()
    assert claim(session, queue).filename == "N20251120S0001.fits"
    assert claim(session, queue) is None
    time.sleep(0.4)
    again = claim(session, queue)
    assert again.filename == "N20251124S0001.fits" and again.attempts == 1


def test_a_retry_can_park_every_entry_alike_in_one_statement(session: Session) -> None:
    queue = Queue(ExportQueue, backoff=Backoff(0.01, 0.02))
    for i in range(50):
        queue.add(session, f"N20251123S{i:04d}.fits", destination="https://down")
    queue.add(session, "N20251120S0001.fits", destination="https://up")
    session.commit()
    entry = claim(session, queue)
    assert entry["destination"] == "https://down"
    assert queue.retry(session, entry, "down", delay=600, counts=False, alike=("destination",))
    session.commit()
    counts = queue.counts(session)
    assert (counts.waiting, counts.deferred) == (51, 50)
    errors = session.scalars(
        select(ExportQueue.error).where(ExportQueue.destination == "https://down")
    ).all()
    assert errors == ["down"] * 50  # each says why it waits
    assert claim(session, queue)["destination"] == "https://up"
    assert claim(session, queue) is None


def test_other_workers_fail_an_entry_held_past_the_maximum_run_time(session: Session) -> None:
    """For a holder that can stop neither its work nor itself: its heartbeats keep the lease,
    but the others' sweep fails the entry once it is ``max_run + lease`` old."""
    queue = ingest_queue(lease_seconds=0.3, max_run_seconds=0.2)
    queue.add(session, "hung.fits")
    queue.add(session, "N20251120S0001.fits")
    session.commit()
    held = claim(session, queue)
    for _ in range(4):
        time.sleep(0.2)
        assert queue.heartbeat(session, held)  # alive all along
        session.commit()
    other = ingest_queue(lease_seconds=0.3, max_run_seconds=0.2)
    claim(session, other, W2)
    [failed] = queue.entries(session, Status.FAILED)
    assert failed["id"] == held.id
    assert failed["error"].startswith("ran longer than 0.2s (queue_max_run_seconds)")
    assert not queue.heartbeat(session, held)


def test_a_worker_that_parks_a_big_backlog_vacuums_the_claim_index(
    pg_db_url: str, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL: parked rows leave dead entries at the head of the claim index, which every
    claim walks (and, at first, visits in the heap) until vacuum removes them; the worker
    vacuums once it has parked many."""
    import logging

    from fits_storage.orm.queues import ExportQueue as Model
    from fits_storage.queues import Entry, TransientError, WorkContext
    from fits_storage.queues.engine import RECLAIM_AFTER_PARKED
    from tests.conftest import make_test_config
    from tests.loops import make_loop

    engine = make_engine(pg_db_url)
    config = make_test_config(tmp_path, pg_db_url)
    queue = Queue(Model, backoff=Backoff(0.01, 0.02))
    count = 4 * RECLAIM_AFTER_PARKED
    with Session(engine) as session:
        queue.add_many(
            session,
            [{"filename": f"N20991231S{i:04d}.fits", "destination": "down"} for i in range(count)],
        )
        session.commit()

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        raise TransientError("down", delay=3600, counts=False, alike=("destination",))

    try:
        with caplog.at_level(logging.INFO, logger="test_loop"):
            make_loop(engine, config, work, queue).run()
        assert "vacuumed exportqueue after parking entries" in caplog.text
        # That it ran is what can be checked here: what it removes depends on every other
        # transaction of the database (the tests running beside this one hold snapshots).
        # Alone, a claim then reads 1 page instead of 34.
        with engine.connect() as conn:
            vacuums = conn.exec_driver_sql(
                "SELECT vacuum_count FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname = 'exportqueue'"
            ).scalar()
        assert vacuums == 1
    finally:
        engine.dispose()
