"""The queue engine with real worker processes: concurrency, SIGKILL, lost connections."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from sqlalchemy import Engine, text

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.queues import Worker, get_queue
from tests.conftest import make_test_config
from tests.processes import start_recording_worker, stop, wait_for
from tests.workers.recording_worker import CREATE

NAMES = [f"N20251123S{i:04d}.fits" for i in range(1, 1000)]


def prepare(engine: Engine, config: Config, count: int) -> list[str]:
    names = NAMES[:count]
    factory = make_session_factory(engine)
    with factory() as session:
        session.execute(text(CREATE))
        assert (
            get_queue("preview", config).add_many(session, [{"filename": n} for n in names])
            == count
        )
        session.commit()
    return names


def processed(engine: Engine) -> Counter:
    with engine.connect() as conn:
        return Counter(row[0] for row in conn.execute(text("SELECT filename FROM processed")))


def queue_total(engine: Engine, config: Config) -> int:
    with make_session_factory(engine)() as session:
        return get_queue("preview", config).counts(session).total


@pytest.mark.slow
def test_grid_every_entry_processed_exactly_once(engine: Engine, config: Config) -> None:
    names = prepare(engine, config, 300)
    workers = [start_recording_worker(config, f"grid{i}", "--empty") for i in range(4)]
    for worker in workers:
        assert worker.wait(120) == 0, worker.stderr.read().decode()
    assert processed(engine) == Counter(names)
    assert queue_total(engine, config) == 0
    by_worker = Counter()
    with engine.connect() as conn:
        by_worker.update(row[0] for row in conn.execute(text("SELECT worker FROM processed")))
    assert len(by_worker) > 1, f"work was not shared: {by_worker}"


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    tmp_path, db_url: str, engine: Engine
) -> None:
    config = make_test_config(tmp_path, db_url, queue_lease_seconds="1.5", queue_max_attempts="50")
    names = prepare(engine, config, 60)
    slow = {"TEST_WORK_SECONDS": "0.3"}
    rng = random.Random(20251123)
    workers = [start_recording_worker(config, f"crash{i}", **slow) for i in range(3)]
    kills = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.1, 0.6))
        victim = rng.randrange(len(workers))
        workers[victim].kill()
        workers[victim].wait()
        kills += 1
        workers[victim] = start_recording_worker(config, f"crash{victim}", **slow)
    assert kills >= 5
    wait_for(lambda: queue_total(engine, config) == 0, 60, "the queue to drain after the kills")
    for worker in workers:
        stop(worker)
    assert processed(engine) == Counter(names)


def test_worker_recovers_from_terminated_connection(tmp_path, pg_db_url: str) -> None:
    """PostgreSQL only: SQLite has no server connection to cut."""
    db_url = pg_db_url
    engine = make_engine(db_url)
    app = f"fsworker_{random.randrange(10**9)}"
    worker_url = f"{db_url}&application_name={app}"
    # Polling every 30 s: work done sooner proves LISTEN was re-established after the cut.
    config = make_test_config(tmp_path, worker_url, queue_poll_seconds="30")
    prepare(engine, config, 5)
    worker = start_recording_worker(config, "cut")
    try:
        wait_for(lambda: sum(processed(engine).values()) == 5, 30, "the first batch")
        with engine.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :app"
                ),
                {"app": app},
            ).scalar()
        assert killed >= 1
        factory = make_session_factory(engine)
        with factory() as session:
            get_queue("preview", config).add_many(
                session, [{"filename": n} for n in NAMES[100:110]]
            )
            session.commit()
        wait_for(lambda: sum(processed(engine).values()) == 15, 20, "work after the cut")
        assert worker.poll() is None, "the worker died instead of reconnecting"
    finally:
        assert stop(worker) == 0
        engine.dispose()


def test_readded_while_in_progress_is_processed_after_first_pass(
    engine: Engine, config: Config
) -> None:
    prepare(engine, config, 0)
    queue = get_queue("preview", config)
    factory = make_session_factory(engine)
    name = "N20251123S0001.fits"
    with factory() as session:
        queue.add(session, name)
        session.commit()
        first_pass = queue.claim(session, Worker("first-pass"))  # in progress, held here
        session.commit()
        assert queue.add(session, name)  # re-added while in progress
        session.commit()
    worker = start_recording_worker(config, "readd", "--empty")
    assert worker.wait(30) == 0
    assert processed(engine)[name] == 0, "handed out while the first pass was in progress"
    with factory() as session:
        assert queue.complete(session, first_pass)
        session.commit()
    worker = start_recording_worker(config, "readd", "--empty")
    assert worker.wait(30) == 0
    assert processed(engine)[name] == 1
    assert queue_total(engine, config) == 0


def test_idle_worker_is_woken_by_notify_not_polling(tmp_path, pg_db_url: str) -> None:
    engine = make_engine(pg_db_url)
    config = make_test_config(tmp_path, pg_db_url, queue_poll_seconds="60")
    prepare(engine, config, 0)
    worker = start_recording_worker(config, "idle")
    try:
        time.sleep(2)  # idle, listening
        factory = make_session_factory(engine)
        with factory() as session:
            get_queue("preview", config).add(session, "N20251123S0001.fits")
            session.commit()
        added = time.monotonic()
        wait_for(lambda: sum(processed(engine).values()) == 1, 10, "the notified worker")
        assert time.monotonic() - added < 10
    finally:
        assert stop(worker) == 0
        engine.dispose()
