"""The loop's read-ahead: the next entry claimed before the work on the one in hand, through
real worker processes (``TEST_READ_AHEAD`` in the recording worker)."""

from __future__ import annotations

import signal
from collections import Counter

from sqlalchemy import Engine, text

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.queues import get_queue
from fits_storage.service.worker import AHEAD
from tests.conftest import make_test_config
from tests.processes import start_recording_worker, stopped_after, wait_for
from tests.workers.recording_worker import CREATE

NAMES = [f"N20251123S{i:04d}.fits" for i in range(1, 20)]


def fill(engine: Engine, config: Config, names: list[str]) -> None:
    with make_session_factory(engine)() as session:
        session.execute(text(CREATE))
        get_queue("preview", config).add_many(session, [{"filename": n} for n in names])
        session.commit()


def processed(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return sorted(
            (row[0], row[1]) for row in conn.execute(text("SELECT filename, worker FROM processed"))
        )


def counts(engine: Engine, config: Config):  # noqa: ANN201 - QueueCounts
    with make_session_factory(engine)() as session:
        return get_queue("preview", config).counts(session)


def test_each_entry_after_the_first_is_handed_to_the_hook_before_its_work(
    engine: Engine, config: Config
) -> None:
    fill(engine, config, NAMES[:6])
    worker = start_recording_worker(config, "ahead", "--empty", TEST_READ_AHEAD="1")
    assert worker.wait(60) == 0, worker.stderr.read().decode()
    # The first claimed directly, every later one ahead of its turn; each once.
    rows = processed(engine)
    assert sorted(name for name, _ in rows) == NAMES[:6]
    assert Counter(how for _, how in rows) == {"direct": 1, "ahead": 5}
    assert counts(engine, config).total == 0


def test_a_stopped_worker_hands_back_the_entries_it_held_ahead(
    engine: Engine, config: Config
) -> None:
    fill(engine, config, NAMES[:4])
    worker = start_recording_worker(
        config, "term", TEST_READ_AHEAD="1", TEST_WORK_SECONDS="3", TEST_WORK_FIXED="1"
    )
    held = 1 + AHEAD
    wait_for(lambda: counts(engine, config).in_progress == held, 30, "one in hand, two ahead")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.stderr.read().decode()
    after = counts(engine, config)
    assert (after.in_progress, after.waiting) == (0, 3)  # those ahead are back, untouched
    [(done, how)] = processed(engine)
    assert how == "direct"
    log = (config.log_dir / "recording_worker-term.log").read_text()
    handed_back = [n for n in NAMES[:4] if f"stopping: handing back {n} untouched" in log]
    assert len(handed_back) == AHEAD and done not in handed_back


def test_the_entry_held_ahead_keeps_its_lease(tmp_path, pg_db_url: str) -> None:
    """Held for longer than a lease while the entry in hand is worked on, it is renewed by the
    heartbeat: a second worker, polling meanwhile for stale entries, does not take it over."""
    config = make_test_config(tmp_path, pg_db_url, queue_lease_seconds="3")
    engine = make_engine(pg_db_url)
    try:
        fill(engine, config, NAMES[:2])
        first = start_recording_worker(
            config, "first", "--empty", TEST_READ_AHEAD="1", TEST_WORK_SECONDS="4.5",
            TEST_WORK_FIXED="1",
        )
        wait_for(lambda: counts(engine, config).in_progress == 2, 30, "one in hand, one ahead")
        second = start_recording_worker(config, "second", TEST_READ_AHEAD="1")
        with stopped_after(second):
            assert first.wait(60) == 0, first.stderr.read().decode()
        rows = processed(engine)
        assert Counter(how for _, how in rows) == {"direct": 1, "ahead": 1}  # by its holder
        assert sorted(name for name, _ in rows) == NAMES[:2]
        logs = "".join(
            (config.log_dir / f"recording_worker-{n}.log").read_text() for n in ("first", "second")
        )
        assert "lost" not in logs and "discarded" not in logs
    finally:
        engine.dispose()


def test_oneshot_claims_nothing_ahead(engine: Engine, config: Config) -> None:
    fill(engine, config, NAMES[:3])
    worker = start_recording_worker(config, "one", "--oneshot", TEST_READ_AHEAD="1")
    assert worker.wait(60) == 0, worker.stderr.read().decode()
    [(_, how)] = processed(engine)
    assert how == "direct"
    after = counts(engine, config)
    assert (after.in_progress, after.waiting) == (0, 2)
