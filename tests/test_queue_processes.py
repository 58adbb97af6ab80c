"""The queue engine with real worker processes: concurrency, SIGKILL, lost connections."""

from __future__ import annotations

import dataclasses
import random
import signal
import socket
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import Engine, text

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.queues import Worker, get_queue
from tests.conftest import make_test_config
from tests.processes import start_recording_worker, stop, stopped_after, wait_for
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
    # Each entry takes a little while, so that one worker cannot drain the queue before the
    # others have started (they start slowly on a loaded machine).
    workers = [
        start_recording_worker(
            config, f"grid{i}", "--empty", TEST_WORK_SECONDS="0.03", TEST_WORK_FIXED="1"
        )
        for i in range(4)
    ]
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
        with stopped_after(worker):
            wait_for(lambda: sum(processed(engine).values()) == 5, 30, "the first batch")
            with engine.begin() as conn:
                gone = [
                    row[0]
                    for row in conn.execute(
                        text(
                            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :app"
                        ),
                        {"app": app},
                    )
                ]
                killed = len(gone)
            assert killed >= 1

            def listening_again() -> bool:
                with engine.connect() as conn:
                    return bool(
                        conn.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity "
                                "WHERE application_name = :app "
                                "AND query LIKE 'LISTEN%' AND pid <> ALL(:gone)"
                            ),
                            {"app": app, "gone": gone},
                        ).scalar()
                    )

            wait_for(listening_again, 20, "the worker to LISTEN on a new connection")
            # Only now is work added: picked up well within the 30 s poll, it came by NOTIFY to
            # the re-issued LISTEN (work added before that would be found by the look a worker
            # takes after any reconnection, and would prove nothing).
            factory = make_session_factory(engine)
            with factory() as session:
                get_queue("preview", config).add_many(
                    session, [{"filename": n} for n in NAMES[100:110]]
                )
                session.commit()
            wait_for(lambda: sum(processed(engine).values()) == 15, 15, "work after the cut")
            assert worker.poll() is None, "the worker died instead of reconnecting"
    finally:
        engine.dispose()


def test_readded_while_in_progress_is_processed_after_first_pass(
    engine: Engine, config: Config
) -> None:
    # The first pass is held here without heartbeats: a lease long enough that a worker slow to
    # start on a loaded machine cannot rescue it as stale (that is another test's subject).
    config = dataclasses.replace(config, queue_lease_seconds=600.0)
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
        with stopped_after(worker):
            time.sleep(2)  # idle, listening
            factory = make_session_factory(engine)
            with factory() as session:
                get_queue("preview", config).add(session, "N20251123S0001.fits")
                session.commit()
            added = time.monotonic()
            wait_for(lambda: sum(processed(engine).values()) == 1, 10, "the notified worker")
            assert time.monotonic() - added < 10
    finally:
        engine.dispose()


def test_a_stopped_worker_is_rescued_and_its_late_completion_discarded(
    engine: Engine, config: Config
) -> None:
    """SIGSTOP freezes a worker mid-work (heartbeat thread and all): its lease runs out, another
    worker takes the entry over, and when the first one is continued its completion is fenced
    off and its write rolled back."""
    [name] = prepare(engine, config, 1)
    frozen = start_recording_worker(config, "frozen", TEST_WORK_SECONDS="3", TEST_WORK_FIXED="1")
    try:
        wait_for(lambda: in_progress_by(engine) == ["recording_worker-frozen"], 20, "the claim")
        frozen.send_signal(signal.SIGSTOP)
        time.sleep(config.queue_lease_seconds + 0.5)  # the lease runs out while it is frozen
        rescuer = start_recording_worker(config, "rescuer", "--empty")
        assert rescuer.wait(30) == 0
        assert processed(engine) == Counter({name: 1})
        frozen.send_signal(signal.SIGCONT)
        log = config.log_dir / "recording_worker-frozen.log"
        wait_for(lambda: "lease lost" in log.read_text(), 20, "the late worker to notice")
        assert processed(engine) == Counter({name: 1})  # its own write was rolled back
        assert queue_total(engine, config) == 0
    except BaseException:
        frozen.send_signal(signal.SIGCONT)
        stop(frozen)  # the failure above is the one to report
        raise
    assert stop(frozen) == 0
    with engine.connect() as conn:
        workers = [r[0] for r in conn.execute(text("SELECT worker FROM processed"))]
    assert workers == ["recording_worker-rescuer"]


def in_progress_by(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                text("SELECT worker FROM previewqueue WHERE status = 'in_progress'")
            )
        ]


def test_workers_woken_by_one_notify_never_take_one_file_twice(tmp_path, pg_db_url: str) -> None:
    """Several idle workers, one NOTIFY, one file queued from four folders: they race for the
    same file, the unique in-progress index turns the losers away, and they move on."""
    engine = make_engine(pg_db_url)
    config = make_test_config(tmp_path, pg_db_url, queue_poll_seconds="60")
    prepare(engine, config, 0)
    workers = [
        start_recording_worker(config, f"k{i}", TEST_WORK_SECONDS="0.5", TEST_WORK_FIXED="1")
        for i in range(4)
    ]
    doubles: list[list] = []
    watching = threading.Event()

    def watch() -> None:
        with engine.connect() as conn:
            while not watching.is_set():
                found = conn.execute(
                    text(
                        "SELECT filename, count(*) FROM previewqueue WHERE status = "
                        "'in_progress' GROUP BY filename HAVING count(*) > 1"
                    )
                ).all()
                if found:
                    doubles.append(found)
                conn.rollback()
                time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    try:
        time.sleep(2)  # all idle and listening
        watcher.start()
        with make_session_factory(engine)() as session:  # one transaction: one NOTIFY
            get_queue("preview", config).add_many(
                session,
                [{"filename": "N20251123S0001.fits", "path": f"p{i}"} for i in range(4)]
                + [{"filename": "N20251120S0001.fits"}],
            )
            session.commit()
        wait_for(lambda: sum(processed(engine).values()) == 5, 60, "all five entries")
    finally:
        watching.set()
        if watcher.is_alive():
            watcher.join()
        codes = [stop(w) for w in workers]
        engine.dispose()
    assert doubles == []
    assert codes == [0, 0, 0, 0]
    assert processed(engine) == Counter({"N20251123S0001.fits": 4, "N20251120S0001.fits": 1})
    for i in range(4):
        log = (config.log_dir / f"recording_worker-k{i}.log").read_text()
        assert "Traceback" not in log and "database unavailable" not in log, log


def test_a_worker_stuck_past_the_maximum_run_time_is_ended_and_its_entry_failed(
    tmp_path, db_url: str
) -> None:
    """A work no signal can interrupt: the heartbeat thread stops feeding the watchdog at the
    limit, then fails the entry and ends the process for systemd to replace; the rest of the
    queue flows on in the next worker."""
    engine = make_engine(db_url)
    config = make_test_config(tmp_path, db_url, queue_max_run_seconds="2")
    names = prepare(engine, config, 3)
    hung = max(names)  # the newest: taken first
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(60)
        worker = start_recording_worker(
            config,
            "stuck",
            "--empty",
            TEST_HANG=hung,
            NOTIFY_SOCKET=address,
            WATCHDOG_USEC="200000",
        )
        messages: list[str] = []
        while not messages or not messages[-1].startswith("STATUS=work overran"):
            messages.append(sock.recv(256).decode())
        assert worker.wait(30) == 1
    processing = messages.index(f"STATUS=processing {hung}")
    # Heartbeats come at least a second apart, so at most two fall within the two-second
    # limit and may feed the watchdog; one that fed it unconditionally sent one every tick
    # until the process was ended, more than a lease later.
    assert messages[processing:].count("WATCHDOG=1") <= 2, messages
    log = (config.log_dir / "recording_worker-stuck.log").read_text()
    assert "could not be interrupted" in log and "CRITICAL" in log
    with engine.connect() as conn:
        status, error = conn.execute(
            text("SELECT status, error FROM previewqueue WHERE filename = :f"), {"f": hung}
        ).one()
    assert status == "failed" and "ran longer than 2s" in error
    successor = start_recording_worker(config, "successor", "--empty")
    assert successor.wait(30) == 0
    assert processed(engine) == Counter({n: 1 for n in names if n != hung})
    engine.dispose()
