"""The worker loop in-process, on SQLite and PostgreSQL: each completion claims the next entry."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.db.engine import make_session_factory
from fits_storage.orm.file import File
from fits_storage.orm.queues import PreviewQueue
from fits_storage.queues import Entry, WorkContext
from tests.loops import fill, make_loop
from tests.workers.recording_worker import CREATE

NAMES = [f"N20251123S{i:04d}.fits" for i in range(1, 21)]


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends, in order."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        sent.append(statement.lstrip())

    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


def test_a_busy_worker_pays_one_transaction_per_entry(
    engine: Engine, config: Config, statements: list[str]
) -> None:
    fill(engine, config, NAMES)
    done: list[str] = []

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        done.append(entry.filename)

    statements.clear()
    make_loop(engine, config, work).run()
    assert done == sorted(NAMES, reverse=True)
    # The worker registry's writes (one transaction each, every few seconds) are not per entry.
    registry = [s for s in statements if "queueworker" in s]
    statements[:] = [s for s in statements if "queueworker" not in s]
    if engine.dialect.name == "postgresql":
        # One statement per entry (completion and next claim together, in autocommit), plus
        # the first claim and the final look at an empty queue (each with its sweep: five
        # statements), and the one-shot run's summary.
        assert len(statements) <= len(NAMES) + 12, statements
    else:
        begins = [s for s in statements if s.startswith("BEGIN IMMEDIATE")]
        assert len(begins) - len(registry) <= len(NAMES) + 2, begins


def test_work_that_writes_commits_with_its_completion_and_the_next_claim(
    engine: Engine, config: Config
) -> None:
    with engine.begin() as conn:
        conn.execute(text(CREATE))
    fill(engine, config, NAMES[:3])

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        session.execute(
            text("INSERT INTO processed (filename, worker) VALUES (:f, 'loop')"),
            {"f": entry.filename},
        )
        if entry.filename == NAMES[1]:
            raise ValueError("broken file")  # its write must go, its entry must fail

    make_loop(engine, config, work).run()
    with make_session_factory(engine)() as session:
        written = session.scalars(text("SELECT filename FROM processed")).all()
        left = session.execute(select(PreviewQueue.filename, PreviewQueue.status)).all()
    assert sorted(written) == [NAMES[0], NAMES[2]]
    assert left == [(NAMES[1], "failed")]


def test_objects_added_to_the_session_are_committed_with_the_completion(
    engine: Engine, config: Config
) -> None:
    """A work that only ``session.add``s has sent nothing yet; its rows must still land with the
    completion, not be mistaken for a work that wrote nothing."""
    fill(engine, config, NAMES[:3])

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        session.add(File(name=entry.filename))

    make_loop(engine, config, work).run()
    with make_session_factory(engine)() as session:
        assert sorted(session.scalars(select(File.name))) == sorted(NAMES[:3])
        assert session.scalar(select(func.count()).select_from(PreviewQueue)) == 0


def test_a_stop_during_the_chained_claim_hands_that_entry_back_untouched(
    engine: Engine, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    fill(engine, config, NAMES[:3])
    done: list[str] = []

    def work(session: Session, entry: Entry, context: WorkContext) -> None:
        done.append(entry.filename)

    loop = make_loop(engine, config, work)

    def stop_mid_completion(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if done and statement.lstrip().startswith(("DELETE", "WITH")):
            loop.daemon.stopping.set()  # SIGTERM arrives while the completion is in flight

    event.listen(engine, "before_cursor_execute", stop_mid_completion)
    try:
        with caplog.at_level(logging.INFO, logger="test_loop"):
            loop.run()
    finally:
        event.remove(engine, "before_cursor_execute", stop_mid_completion)
    assert done == [NAMES[2]]
    assert f"handing back {NAMES[1]} untouched" in caplog.text
    with make_session_factory(engine)() as session:
        rows = session.execute(
            select(
                PreviewQueue.filename,
                PreviewQueue.status,
                PreviewQueue.attempts,
                PreviewQueue.worker,
            ).order_by(PreviewQueue.filename)
        ).all()
    assert rows == [(NAMES[0], "waiting", 0, None), (NAMES[1], "waiting", 0, None)]


def test_a_hint_reaches_only_the_very_entry_it_was_given_for(config: Config) -> None:
    """The same row claimed again later (after a release) is another Entry: no stale hint."""
    context = WorkContext(config, logging.getLogger("t"), None, None, None, None)  # type: ignore[arg-type]
    done, leased = (Entry(i, f"f{i}.fits", "", 1, "w", {}) for i in (1, 2))
    context.entry_completed(done, leased, hint="what the write read")
    assert context.take_completed(done) == (True, leased)
    again = Entry(2, "f2.fits", "", 2, "w", {})
    assert context.take_hint(again) is None
    context.entry_completed(done, leased, hint="what the write read")
    assert context.take_hint(leased) == "what the write read"
    assert context.take_hint(leased) is None  # given once
