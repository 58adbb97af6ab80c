"""Reading the next file while the write runs (PostgreSQL): the write names the entry after the
one it leases, that file is read while the next write is in flight, and its ingest uses what
was read only if the entry is the one leased and the file is as it was read."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.db.overlapped import overlapped
from fits_storage.ingest import IngestAction, ingest_file
from fits_storage.ingest import ingest as ingest_module
from fits_storage.ingest.readahead import Prepared, ReadAheadPace
from fits_storage.ingest.rows import Completion, Waiting
from fits_storage.ingest.work import ingest_work
from fits_storage.orm import DiskFile, File
from fits_storage.queues import Worker, get_queue
from tests.conftest import make_test_config
from tests.fitsdata import make_observatory_file, write_not_fits
from tests.loops import make_loop
from tests.processes import run_ingest_blocked_on

# The ingest queue hands out the highest sort key first: these names come out in this order.
NAMES = [f"N20251123S{i:04d}.fits" for i in (4, 3, 2, 1)]
# The tests' usual 3 s lease makes the loop sweep every 0.75 s, and a claim due to sweep is
# made by the loop, not leased by a write: a slow machine would change what is read ahead.
LONG_LEASE = {"queue_lease_seconds": "120"}


@pytest.fixture
def db_url(pg_db_url: str) -> str:
    return pg_db_url


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def fresh_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "_PACE", ReadAheadPace())


def _queue_files(engine: Engine, config: Config, names: list[str]) -> dict[str, Path]:
    paths = {n: make_observatory_file(config.storage_root, n, seed=i) for i, n in enumerate(names)}
    with make_session_factory(engine)() as session:
        get_queue("ingest", config).add_many(session, [{"filename": n} for n in names])
        session.commit()
    return paths


def _recorded_md5s(engine: Engine) -> dict[str, str]:
    with make_session_factory(engine)() as session:
        rows = session.execute(select(DiskFile.filename, DiskFile.file_md5).where(DiskFile.present))
        return dict(rows.all())


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _spy_reads(
    monkeypatch: pytest.MonkeyPatch, after_reading_ahead: Any = None
) -> tuple[list[Waiting], list[str]]:
    """The entries read ahead, and the files an ingest read itself (not within a read-ahead);
    ``after_reading_ahead(waiting, result)`` runs after each read-ahead."""
    ahead: list[Waiting] = []
    read_now: list[str] = []
    inside: list[bool] = []
    real_ahead, real_now = ingest_module.read_ahead, ingest_module._read_now

    def spy_ahead(config: Config, waiting: Waiting) -> Any:
        inside.append(True)
        try:
            result = real_ahead(config, waiting)
        finally:
            inside.pop()
        ahead.append(waiting)
        if after_reading_ahead is not None:
            after_reading_ahead(waiting, result)
        return result

    def spy_now(config: Config, filename: str, *args: Any, **kwargs: Any) -> Any:
        if not inside:
            read_now.append(filename)
        return real_now(config, filename, *args, **kwargs)

    monkeypatch.setattr(ingest_module, "read_ahead", spy_ahead)
    monkeypatch.setattr(ingest_module, "_read_now", spy_now)
    return ahead, read_now


def test_the_write_names_the_entry_after_the_one_it_leases(
    session: Session, tmp_path: Path, engine: Engine, db_url: str
) -> None:
    config = make_test_config(tmp_path, db_url)
    paths = _queue_files(engine, config, NAMES[:3])
    queue = get_queue("ingest", config)
    entry = queue.claim(session, Worker("w"))
    session.commit()
    assert entry is not None and entry.filename == NAMES[0]

    completing = Completion(queue, entry, claim_for=Worker("w"))
    result = ingest_file(session, config, entry.filename, completing=completing)

    assert result.claimed is not None and result.claimed.filename == NAMES[1]
    assert result.prepared_next is not None
    after = result.prepared_next.after
    assert after is not None and (after.filename, after.path) == (NAMES[2], "")
    status = session.scalar(select(queue.table.c.status).where(queue.table.c.id == after.id))
    assert status == "waiting"  # named, not leased
    assert paths  # the files exist for the ingest above


def test_a_worker_reads_each_file_once_and_ingests_what_it_read_ahead(
    tmp_path: Path, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_test_config(tmp_path, db_url, **LONG_LEASE)
    paths = _queue_files(engine, config, NAMES)
    ahead, read_now = _spy_reads(monkeypatch)

    make_loop(engine, config, ingest_work, get_queue("ingest", config)).run()

    assert _recorded_md5s(engine) == {n: _md5(p) for n, p in paths.items()}
    # the first file is claimed by the loop itself; the second is leased by the first write,
    # which only then names the third: from the third on, each file was read ahead
    assert read_now == NAMES[:2]
    assert [w.filename for w in ahead] == NAMES[2:]


def test_a_file_changed_after_it_was_read_ahead_is_read_again(
    tmp_path: Path, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_test_config(tmp_path, db_url, **LONG_LEASE)
    paths = _queue_files(engine, config, NAMES[:3])
    changed = NAMES[2]

    def rewrite(waiting: Waiting, result: Any) -> None:
        assert result is not None and waiting.filename == changed
        path = paths[changed]
        make_observatory_file(path.parent, changed, seed=99)
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    ahead, read_now = _spy_reads(monkeypatch, after_reading_ahead=rewrite)

    make_loop(engine, config, ingest_work, get_queue("ingest", config)).run()

    assert [w.filename for w in ahead] == [changed]
    assert read_now == [*NAMES[:2], changed]  # read again: it was not as it had been read
    assert _recorded_md5s(engine)[changed] == _md5(paths[changed])


def test_a_bad_file_named_next_fails_through_its_own_ingest(
    tmp_path: Path, engine: Engine, db_url: str
) -> None:
    config = make_test_config(tmp_path, db_url)
    paths = _queue_files(engine, config, NAMES[:3])
    write_not_fits(paths[NAMES[2]])

    make_loop(engine, config, ingest_work, get_queue("ingest", config)).run()

    table = get_queue("ingest", config).table
    with make_session_factory(engine)() as session:
        failed = session.execute(select(table.c.filename, table.c.error)).all()
    assert [f for f, _ in failed] == [NAMES[2]]
    assert "not a readable FITS file" in failed[0][1]
    assert set(_recorded_md5s(engine)) == set(NAMES[:2])


def test_what_was_read_for_another_entry_is_not_used_and_slows_the_pace(
    session: Session, tmp_path: Path, engine: Engine, db_url: str
) -> None:
    """Another worker leases the entry named next first: its file was read for nothing."""
    config = make_test_config(tmp_path, db_url)
    _queue_files(engine, config, NAMES[:3])
    queue = get_queue("ingest", config)
    entry = queue.claim(session, Worker("w"))
    session.commit()
    assert entry is not None
    named = Waiting(0, NAMES[2], "")  # an id no entry has: "leased by someone else"

    completing = Completion(queue, entry, claim_for=Worker("w"))
    result = ingest_file(
        session, config, entry.filename, completing=completing, prepared=Prepared(after=named)
    )

    assert result.action is IngestAction.NEW and result.prepared_next is not None
    assert result.prepared_next.contents is None
    assert not ingest_module._PACE.allows()  # the next write reads nothing ahead
    assert ingest_module._PACE.allows()


def test_the_pace_skips_twice_as_many_writes_after_each_miss_until_one_pays() -> None:
    pace = ReadAheadPace(most=4)
    pattern = []
    for used in (False, False, False, False, True):
        pace.record(used)
        skipped = 0
        while not pace.allows():
            skipped += 1
        pattern.append(skipped)
    assert pattern == [1, 2, 4, 4, 0]


def test_the_statement_runs_while_this_thread_works(engine: Engine) -> None:
    """meanwhile() sees the statement's effect from another connection before it returns."""
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS overlap_probe (x int)")
        conn.commit()
    seen = threading.Event()

    def meanwhile() -> None:
        deadline = time.monotonic() + 30
        with engine.connect() as other:
            while time.monotonic() < deadline:
                count = other.exec_driver_sql("SELECT count(*) FROM overlap_probe").scalar()
                other.rollback()
                if count:
                    seen.set()
                    return
                time.sleep(0.01)

    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        overlapped(
            lambda: conn.exec_driver_sql("INSERT INTO overlap_probe VALUES (1)"),
            meanwhile,
            cancel=lambda: None,
        )
    assert seen.is_set()


def test_an_interrupted_thread_cancels_the_statement_and_waits_for_it() -> None:
    release = threading.Event()
    cancelled: list[bool] = []
    finished: list[bool] = []

    def statement() -> None:
        release.wait(30)
        finished.append(True)

    def meanwhile() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        overlapped(statement, meanwhile, cancel=lambda: cancelled.append(True) or release.set())
    assert cancelled == [True] and finished == [True]


def test_an_error_in_meanwhile_lets_the_statement_finish_uncancelled() -> None:
    finished: list[bool] = []

    def statement() -> None:
        time.sleep(0.2)
        finished.append(True)

    def meanwhile() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        overlapped(statement, meanwhile, cancel=lambda: pytest.fail("cancelled"))
    assert finished == [True]


def test_a_write_overlapped_with_reading_ahead_is_cancelled_at_the_run_time_limit(
    tmp_path: Path, engine: Engine, db_url: str
) -> None:
    """The second file's write (leased by the first's, the third named) waits on another
    transaction's row of its name past the limit: it is cancelled on the server, the file
    fails, and the worker goes on with the third."""
    config = make_test_config(tmp_path, db_url, queue_max_run_seconds="2", **LONG_LEASE)
    _queue_files(engine, config, NAMES[:3])
    done = run_ingest_blocked_on(engine, config, NAMES[1], "--empty")
    assert "ran longer than 2s" in done.stderr
    time.sleep(1)  # a statement left running would write its rows now
    with make_session_factory(engine)() as session:
        names = session.scalars(select(File.name)).all()
        assert sorted(names) == sorted([NAMES[0], NAMES[2]])
        assert session.scalar(select(func.count()).select_from(DiskFile)) == 2


def test_a_read_ahead_cut_short_by_the_run_time_limit_leaves_the_write_standing(
    tmp_path: Path,
    engine: Engine,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The third file becomes a FIFO between the read-ahead's check that it is a regular file
    and its reading, so reading it ahead blocks during the second file's write until the
    run-time limit. The second file, written and completed by then, stays ingested (not
    failed); the third, leased by that write, fails through its own ingest with its own
    reason; the fourth is ingested."""
    config = make_test_config(tmp_path, db_url, queue_max_run_seconds="1", **LONG_LEASE)
    _queue_files(engine, config, NAMES)
    real_copy = ingest_module.local_copy
    swapped: list[str] = []

    @contextmanager
    def checked_then_swapped(config: Config, path: str, filename: str) -> Iterator[Path]:
        with real_copy(config, path, filename) as local:
            if filename == NAMES[2] and not swapped:
                swapped.append(filename)
                local.unlink()
                os.mkfifo(local)
            yield local

    monkeypatch.setattr(ingest_module, "local_copy", checked_then_swapped)
    loop = make_loop(engine, config, ingest_work, get_queue("ingest", config))
    with caplog.at_level("WARNING"):
        loop.run()

    assert swapped == [NAMES[2]]
    table = get_queue("ingest", config).table
    with make_session_factory(engine)() as session:
        left = session.execute(select(table.c.filename, table.c.status, table.c.error)).all()
    assert [(f, s) for f, s, _ in left] == [(NAMES[2], "failed")]
    assert "not a regular file" in left[0][2]
    assert set(_recorded_md5s(engine)) == {NAMES[0], NAMES[1], NAMES[3]}
    assert loop.summary.failed == 1 and loop.summary.processed == 3
    assert f"reading {NAMES[2]} ahead was cut short" in caplog.text


class Interrupted(BaseException):
    """An interruption like the run-time limit's (not an ``Exception``); a test that fails to
    catch it fails alone, where a KeyboardInterrupt would end the whole run."""


def test_an_interruption_spared_after_the_statement_succeeded_returns_its_result() -> None:
    ran = threading.Event()

    def statement() -> str:
        ran.set()
        return "written"

    def meanwhile() -> None:
        ran.wait(30)
        raise Interrupted

    assert overlapped(statement, meanwhile, cancel=lambda: None, spare=(Interrupted,)) == "written"


def test_an_interruption_is_not_spared_when_the_statement_is_cancelled_or_fails() -> None:
    release = threading.Event()
    cancelled: list[bool] = []

    def running() -> str:
        release.wait(30)
        raise RuntimeError("canceling statement due to user request")  # as the server does

    def interrupted() -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        overlapped(
            running,
            interrupted,
            cancel=lambda: cancelled.append(True) or release.set(),
            spare=(Interrupted,),
        )
    assert cancelled == [True]

    def failing() -> str:
        raise ValueError("refused")

    def after_it_failed() -> None:
        time.sleep(0.2)
        raise Interrupted

    with pytest.raises(Interrupted):
        overlapped(failing, after_it_failed, cancel=lambda: None, spare=(Interrupted,))


def test_a_statement_the_cancel_came_too_late_for_is_spared() -> None:
    release = threading.Event()

    def finishing() -> str:
        release.wait(30)
        return "written"  # the cancel reached the server after the statement ended

    def interrupted() -> None:
        raise Interrupted

    result = overlapped(finishing, interrupted, cancel=lambda: release.set(), spare=(Interrupted,))
    assert result == "written"
