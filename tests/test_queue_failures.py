"""What the worker loop does with each kind of failure, on SQLite and PostgreSQL.

A lost connection hands the entry back; any other database error (a statement timeout, a
deadlock, a missing table, a bad row at flush) is the entry's failure: retried with backoff,
counted, then failed with its traceback while the worker goes on; a work that overruns
``queue_max_run_seconds`` is failed.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.db.errors import is_database_lost
from fits_storage.orm.file import File
from fits_storage.orm.queues import PreviewQueue
from fits_storage.queues import Backoff, Entry, Queue, WorkContext
from tests.loops import fill, make_loop

FAST_RETRIES = Backoff(base_seconds=0.01, cap_seconds=0.02)
MAX_ATTEMPTS = 3


def preview_queue(config: Config, **settings: float) -> Queue:
    settings.setdefault("lease_seconds", 3)
    return Queue(PreviewQueue, max_attempts=MAX_ATTEMPTS, backoff=FAST_RETRIES, **settings)


def run_until_settled(engine: Engine, config: Config, work, queue: Queue, runs: int = 20) -> None:  # type: ignore[no-untyped-def]
    """Run --empty loops (each returns once nothing is ready) until nothing waits any more."""
    factory = make_session_factory(engine)
    for _ in range(runs):
        make_loop(engine, config, work, queue).run()
        with factory() as session:
            if queue.counts(session).waiting == 0:
                return
        time.sleep(0.05)  # let the last retry's short backoff pass
    raise AssertionError(f"entries still waiting after {runs} runs")


def rows(engine: Engine) -> dict[str, tuple]:
    with make_session_factory(engine)() as session:
        found = session.execute(
            select(
                PreviewQueue.filename,
                PreviewQueue.status,
                PreviewQueue.attempts,
                PreviewQueue.error,
                PreviewQueue.traceback,
            )
        ).all()
    return {r[0]: tuple(r[1:]) for r in found}


def database_error(session: Session) -> None:
    """A real error of the statement, not of the connection: a statement timeout on
    PostgreSQL (57014), a missing table on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL statement_timeout = 1"))
        session.execute(text("SELECT pg_sleep(1)"))
    else:
        session.execute(text("SELECT * FROM no_such_table"))


def test_a_database_error_in_the_work_is_counted_and_ends_failed(
    engine: Engine, config: Config
) -> None:
    """It used to be taken for a lost database: handed back with its attempt given back, it ran
    again at once, for ever, with ``attempts`` stuck at 1."""
    fill(engine, config, ["poison.fits", "good.fits"])
    ran: list[str] = []

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        ran.append(entry.filename)
        if entry.filename == "poison.fits":
            database_error(session)

    run_until_settled(engine, config, work, preview_queue(config))
    assert ran.count("poison.fits") == MAX_ATTEMPTS
    assert ran.count("good.fits") == 1
    status, attempts, error, tb = rows(engine)["poison.fits"]
    assert (status, attempts) == ("failed", MAX_ATTEMPTS)
    assert error.startswith(f"gave up after {MAX_ATTEMPTS} attempts: OperationalError")
    assert "Traceback" in tb and "database_error" in tb
    assert "good.fits" not in rows(engine)


def test_a_bad_row_at_flush_is_the_works_failure_and_the_worker_goes_on(
    engine: Engine, config: Config
) -> None:
    """Objects a work only ``session.add``s reach the database at flush; a duplicate there
    used to escape the work's error handling and stop the daemon with the entry in progress."""
    with make_session_factory(engine)() as session:
        session.add(File(name="taken.fits"))
        session.commit()
    fill(engine, config, ["taken.fits", "a.fits", "b.fits"])

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        session.add(File(name=entry.filename))

    run_until_settled(engine, config, work, preview_queue(config))
    left = rows(engine)
    assert set(left) == {"taken.fits"}
    status, attempts, error, tb = left["taken.fits"]
    assert (status, attempts) == ("failed", MAX_ATTEMPTS)
    assert "IntegrityError" in error and "IntegrityError" in tb
    with make_session_factory(engine)() as session:
        assert sorted(session.scalars(select(File.name))) == ["a.fits", "b.fits", "taken.fits"]


def test_a_work_past_the_maximum_run_time_is_failed_and_the_queue_flows(
    engine: Engine, config: Config
) -> None:
    fill(engine, config, ["N20251124S0001.fits", "N20251123S0001.fits"])
    done: list[str] = []

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        if entry.filename == "N20251124S0001.fits":
            time.sleep(600)  # a hung read
        done.append(entry.filename)

    started = time.monotonic()
    make_loop(engine, config, work, preview_queue(config, max_run_seconds=0.5)).run()
    assert time.monotonic() - started < 300
    assert done == ["N20251123S0001.fits"]
    status, attempts, error, tb = rows(engine)["N20251124S0001.fits"]
    assert status == "failed" and attempts == 1
    assert error == "RunTimeExceeded: ran longer than 0.5s (queue_max_run_seconds)"
    assert "time.sleep(600)" in tb  # where it hung


def test_a_work_blocked_on_a_fifo_is_failed(tmp_path, engine: Engine, config: Config) -> None:
    fifo = tmp_path / "x.fits"
    os.mkfifo(fifo)
    fill(engine, config, ["x.fits"])

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        with open(fifo, "rb") as stream:  # blocks until a writer comes: none will
            stream.read()

    make_loop(engine, config, work, preview_queue(config, max_run_seconds=0.5)).run()
    assert rows(engine)["x.fits"][0] == "failed"


def pg_error(engine: Engine, sqlstate: str) -> DBAPIError:
    """A real error from the server with this SQLSTATE."""
    with engine.connect() as conn:
        try:
            conn.execute(
                text(f"DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{sqlstate}'; END $$")
            )
        except DBAPIError as exc:
            return exc
    raise AssertionError("no error raised")


def test_only_a_lost_connection_counts_as_database_lost_on_postgresql(pg_db_url: str) -> None:
    engine = make_engine(pg_db_url)
    try:
        for sqlstate in ("57014", "55P03", "40P01", "40001", "42P01", "23505"):
            assert not is_database_lost(pg_error(engine, sqlstate)), sqlstate
        for sqlstate in ("08006", "08003", "57P01", "57P02", "57P03"):
            assert is_database_lost(pg_error(engine, sqlstate)), sqlstate
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with engine.connect() as killer:
                killer.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            with pytest.raises(DBAPIError) as cut:
                conn.exec_driver_sql("SELECT 1")
        assert is_database_lost(cut.value)
    finally:
        engine.dispose()


def test_only_busy_or_gone_counts_as_database_lost_on_sqlite(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'lost.db'}")
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError) as missing:
            conn.exec_driver_sql("SELECT * FROM no_such_table")
        assert not is_database_lost(missing.value)
        impatient = create_engine(engine.url, connect_args={"timeout": 0.05})
        holder = engine.raw_connection()
        holder.cursor().execute("BEGIN IMMEDIATE")
        try:
            with impatient.connect() as conn, pytest.raises(DBAPIError) as busy:
                conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        finally:
            holder.rollback()
            holder.close()
            impatient.dispose()
        assert "locked" in str(busy.value) and is_database_lost(busy.value)
    finally:
        engine.dispose()


def test_a_lost_connection_hands_the_entry_back_without_using_an_attempt(
    pg_db_url: str, tmp_path
) -> None:
    from tests.conftest import make_test_config

    engine = make_engine(pg_db_url)
    config = make_test_config(tmp_path, pg_db_url)
    fill(engine, config, ["cut.fits"])
    cuts: list[int] = []
    attempts: list[int] = []

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        attempts.append(entry.attempts)
        if not cuts:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
            cuts.append(pid)
            with engine.connect() as killer:
                killer.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            session.execute(text("SELECT 1"))

    try:
        loop = make_loop(engine, config, work, preview_queue(config))
        stopper = threading.Timer(20, loop.daemon.stopping.set)  # a safety net only
        stopper.start()
        try:
            loop.run()
        finally:
            stopper.cancel()
        assert attempts == [1, 1]  # handed back as it was, then done on the next claim
        assert rows(engine) == {}
    finally:
        engine.dispose()


def test_a_work_stopped_in_the_middle_of_a_statement_is_failed_not_handed_back(
    pg_db_url: str, tmp_path
) -> None:
    """The run-time limit can strike while the work waits on the server: that connection is in
    no state to roll back, and the failure must still be recorded (not taken for a lost
    database, which would hand the entry back to hang again, for ever)."""
    from tests.conftest import make_test_config

    app = f"fsslow_{os.getpid()}_{time.monotonic_ns()}"
    engine = make_engine(f"{pg_db_url}&application_name={app}")
    config = make_test_config(tmp_path, pg_db_url)
    fill(engine, config, ["slow.fits", "N20251120S0001.fits"])
    ran: list[str] = []

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        ran.append(entry.filename)
        if entry.filename == "slow.fits":
            session.execute(text("SELECT pg_sleep(600)"))

    try:
        loop = make_loop(engine, config, work, preview_queue(config, max_run_seconds=0.5))
        loop.run()
        assert sorted(ran) == ["N20251120S0001.fits", "slow.fits"]
        status, attempts, error, _ = rows(engine)["slow.fits"]
        assert (status, attempts) == ("failed", 1)
        assert error.startswith("RunTimeExceeded: ran longer than 0.5s")

        def still_sleeping() -> int:  # on the server, where it would hold back vacuum
            with make_engine(pg_db_url).connect() as conn:
                return conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
                        "AND state = 'active' AND query LIKE '%pg_sleep%'"
                    ),
                    {"app": app},
                ).scalar()

        deadline = time.monotonic() + 20
        while still_sleeping() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert still_sleeping() == 0, "the interrupted statement still runs on the server"
    finally:
        engine.dispose()
