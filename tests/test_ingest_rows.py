"""A new name's rows in one statement (PostgreSQL): the same rows the ORM writes, or none."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, inspect, select, text, update
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.ingest import IngestAction, ingest_file
from fits_storage.ingest import ingest as ingest_module
from fits_storage.ingest.present import KnownPresent, present_positional, read_present_version
from fits_storage.ingest.rows import Completion, insert_first_version
from fits_storage.ingest.work import ingest_work
from fits_storage.orm import (
    DiskFile,
    DiskFileReport,
    File,
    FullTextHeader,
    Header,
    MiscFile,
    Obslog,
)
from fits_storage.queues import Entry, Queue, Worker, get_queue
from tests.conftest import make_test_config
from tests.fitsdata import bzip2_file, copy_astropy_file, copy_gmos_file
from tests.loops import make_loop
from tests.processes import run_cli, run_ingest_blocked_on

DEPENDENTS = (Header, FullTextHeader, DiskFileReport)


def _values(session: Session, model: type, diskfile_id: int) -> dict[str, Any]:
    column = DiskFile.id if model is DiskFile else model.diskfile_id
    row = session.scalars(select(model).where(column == diskfile_id)).one()
    skip = {"id", "diskfile_id", "entrytime", "present", "canonical"}
    return {a.key: getattr(row, a.key) for a in inspect(model).column_attrs if a.key not in skip}


@pytest.fixture
def db_url(pg_db_url: str) -> str:
    """PostgreSQL only: the one-statement insert is PostgreSQL's; SQLite takes the ORM path."""
    return pg_db_url


@pytest.mark.parametrize("source", ["gmos", "verify.fits", "test0.fits"])
def test_one_statement_rows_equal_the_orm_rows(
    session: Session, config: Config, source: str
) -> None:
    if source == "gmos":
        path = copy_gmos_file(config.storage_root)
    else:
        path = copy_astropy_file(source, config.storage_root)
    first = ingest_file(session, config, path.name)  # a new name: one statement
    session.commit()
    again = ingest_file(session, config, path.name, force=True)  # an existing name: the ORM
    session.commit()
    assert (first.action, again.action) == (IngestAction.NEW, IngestAction.NEW_VERSION)
    assert first.file_id == again.file_id and first.diskfile_id != again.diskfile_id
    for model in (DiskFile, *DEPENDENTS):
        assert _values(session, model, first.diskfile_id) == _values(
            session, model, again.diskfile_id
        ), model.__name__
    older = session.get(DiskFile, first.diskfile_id)
    assert older is not None and not older.present and not older.canonical


def _version(filename: str) -> DiskFile:
    return DiskFile(
        filename=filename,
        file_size=1,
        file_md5="0" * 32,
        lastmod=func.now(),
        mtime_ns=1,
        data_size=1,
        data_md5="0" * 32,
    )


def test_defaults_apply_as_in_a_flush_and_an_existing_name_writes_nothing(
    session: Session,
) -> None:
    rows = [Header(), FullTextHeader(fulltext="x"), DiskFileReport(astropy_ok=True)]
    found = insert_first_version(session, "N1.fits", _version("N1.fits"), rows)
    assert found is not None
    file_id, diskfile_id = found
    diskfile = session.get(DiskFile, diskfile_id)
    assert diskfile is not None and diskfile.file_id == file_id
    # column defaults of attributes never set: path "", present, canonical, entrytime now
    assert (diskfile.path, diskfile.present, diskfile.canonical) == ("", True, True)
    assert diskfile.entrytime is not None and not diskfile.compressed
    report = session.scalars(select(DiskFileReport)).one()
    assert (report.diskfile_id, report.astropy_report, report.fitsverify_ok) == (
        diskfile_id,
        "",
        None,
    )
    assert session.scalar(select(func.count()).select_from(Header)) == 1

    again = insert_first_version(session, "N1.fits", _version("N1.fits"), [Header()])
    assert again is None
    for model in (File, DiskFile, Header, FullTextHeader, DiskFileReport):
        assert session.scalar(select(func.count()).select_from(model)) == 1, model.__name__


def test_an_over_long_value_fails_as_through_the_orm(session: Session) -> None:
    with pytest.raises(DataError, match="too long"):
        insert_first_version(session, "N2.fits", _version("N" * 300), [Header()])


# -- a new name's rows, its fan-out and its queue entry's completion in one statement --------


def _fanning_config(tmp_path: Path, db_url: str) -> Config:
    return make_test_config(
        tmp_path,
        db_url,
        export_destinations="http://archive.example:8080",
        using_previews="true",
        using_calcache="true",
    )


def _gmos_to_ingest(tmp_path: Path, db_url: str) -> tuple[Config, Path, Queue]:
    """A fanning configuration, the real GMOS file in its store, and the ingest queue."""
    config = _fanning_config(tmp_path, db_url)
    return config, copy_gmos_file(config.storage_root), get_queue("ingest", config)


def _claim(
    session: Session, queue: Queue, filename: str, path: str = "", worker: str = "rows"
) -> Entry:
    queue.add(session, filename, path)
    session.commit()
    entry = queue.claim(session, Worker(worker))
    session.commit()
    assert entry is not None
    return entry


def _entries(session: Session, config: Config, name: str) -> list[tuple[str, str]]:
    table = get_queue(name, config).table
    return [tuple(r) for r in session.execute(select(table.c.filename, table.c.status))]


def test_a_new_name_its_fan_out_and_its_completion_are_one_statement(
    session: Session, tmp_path: Path, db_url: str
) -> None:
    config, path, queue = _gmos_to_ingest(tmp_path, db_url)
    earlier = _claim(session, queue, path.name)
    assert queue.fail(session, earlier, "an earlier failure of the same file")
    session.commit()
    entry = _claim(session, queue, path.name)

    result = ingest_file(session, config, path.name, completing=Completion(queue, entry))

    assert result.action is IngestAction.NEW and result.completed
    assert result.queued == ("export to http://archive.example:8080", "preview", "calcache")
    assert not session.in_transaction()
    assert _entries(session, config, "ingest") == []  # completed, the failure cleared
    for name in ("export", "preview", "calcache"):
        assert _entries(session, config, name) == [(path.name, "waiting")], name
    destination = get_queue("export", config).table.c.destination
    assert session.scalar(select(destination)) == "http://archive.example:8080"
    diskfile = session.get(DiskFile, result.diskfile_id)
    assert diskfile is not None and diskfile.present and diskfile.file_md5 == result.file_md5
    assert session.scalar(select(func.count()).select_from(Header)) == 1


def test_an_existing_name_completes_nothing_in_the_statement(
    session: Session, tmp_path: Path, db_url: str
) -> None:
    config = _fanning_config(tmp_path, db_url)
    path = copy_gmos_file(config.storage_root)
    ingest_file(session, config, path.name)
    session.commit()
    queue = get_queue("ingest", config)
    entry = _claim(session, queue, path.name)

    result = ingest_file(
        session, config, path.name, force=True, completing=Completion(queue, entry)
    )

    assert result.action is IngestAction.NEW_VERSION and not result.completed
    session.rollback()  # the ordinary path leaves its writes to the caller: nothing kept
    assert _entries(session, config, "ingest") == [(path.name, "in_progress")]
    assert session.scalar(select(func.count()).select_from(DiskFile)) == 1


def test_a_lost_lease_completes_nothing_and_the_rows_stand(
    session: Session, tmp_path: Path, db_url: str
) -> None:
    """Another worker took the entry over meanwhile: its ingest will find the file unchanged."""
    config, path, queue = _gmos_to_ingest(tmp_path, db_url)
    stale = _claim(session, queue, path.name)
    assert queue.release(session, stale)
    session.commit()
    holder = queue.claim(session, Worker("other"))
    session.commit()
    assert holder is not None and holder.id == stale.id

    result = ingest_file(session, config, path.name, completing=Completion(queue, stale))

    assert result.action is IngestAction.NEW and not result.completed
    assert _entries(session, config, "ingest") == [(path.name, "in_progress")]
    assert session.scalar(select(func.count()).select_from(DiskFile)) == 1
    again = ingest_file(session, config, path.name, completing=Completion(queue, holder))
    assert again.action is IngestAction.UNCHANGED and not again.completed


def _leased(session: Session, config: Config) -> list[tuple[str, str, str, str | None]]:
    table = get_queue("ingest", config).table
    columns = (table.c.filename, table.c.path, table.c.status, table.c.worker)
    return sorted(tuple(r) for r in session.execute(select(*columns)))


def test_the_next_entry_is_leased_in_the_same_statement(
    session: Session, tmp_path: Path, db_url: str
) -> None:
    config, path, queue = _gmos_to_ingest(tmp_path, db_url)
    entry = _claim(session, queue, path.name)
    queue.add(session, "N20250101S0001.fits")
    session.commit()

    completing = Completion(queue, entry, claim_for=Worker("rows"))
    result = ingest_file(session, config, path.name, completing=completing)

    assert result.completed and result.claimed is not None
    assert (result.claimed.filename, result.claimed.worker) == ("N20250101S0001.fits", "rows")
    assert result.prepared_next is not None  # read in the same statement: it has no version
    assert result.prepared_next.present == KnownPresent("N20250101S0001.fits", None)
    assert result.claimed["force"] is False and result.claimed.attempts == 1
    assert _leased(session, config) == [("N20250101S0001.fits", "", "in_progress", "rows")]


def test_the_leased_entrys_present_version_is_read_in_the_same_statement(
    session: Session, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write hands the next ingest the present version of the file it leased (compressed
    or not), so that ingest reads none itself; the same version a read of its own finds."""
    config, path, queue = _gmos_to_ingest(tmp_path, db_url)
    known = copy_astropy_file("verify.fits", config.storage_root, "N20250101S0001.fits")
    ingest_file(session, config, known.name)
    session.commit()
    bzipped = bzip2_file(known, config.storage_root / "N20250101S0001.fits.bz2")
    expected = read_present_version(session, known.name)
    session.commit()
    entry = _claim(session, queue, path.name)
    queue.add(session, bzipped.name)
    session.commit()

    completing = Completion(queue, entry, claim_for=Worker("rows"))
    result = ingest_file(session, config, path.name, completing=completing)

    assert result.claimed is not None and result.claimed.filename == bzipped.name
    assert expected is not None
    assert result.prepared_next is not None
    assert result.prepared_next.present == KnownPresent(known.name, expected)
    reads: list[str] = []
    real = ingest_module.read_present_version
    monkeypatch.setattr(
        ingest_module, "read_present_version", lambda s, n: reads.append(n) or real(s, n)
    )
    again = ingest_file(session, config, bzipped.name, prepared=result.prepared_next)
    assert again.action is IngestAction.NEW_VERSION
    # one read only: the write's own re-check under the file row's lock (without the version
    # handed over, ingest reads it first as well)
    assert reads == [known.name]
    session.commit()


def test_a_leased_entry_of_the_file_just_written_gets_no_present_version(
    session: Session, tmp_path: Path, db_url: str
) -> None:
    """The statement cannot see the version it writes itself: the next ingest of the same
    file (its .bz2) must read the present version for itself, and finds it."""
    config, path, queue = _gmos_to_ingest(tmp_path, db_url)
    entry = _claim(session, queue, path.name)
    bzipped = bzip2_file(path, config.storage_root / f"{path.name}.bz2")
    queue.add(session, bzipped.name)
    session.commit()

    completing = Completion(queue, entry, claim_for=Worker("rows"))
    result = ingest_file(session, config, path.name, completing=completing)

    assert result.claimed is not None and result.claimed.filename == bzipped.name
    assert result.prepared_next is not None and result.prepared_next.present is None
    again = ingest_file(session, config, bzipped.name)
    assert again.action is IngestAction.NEW_VERSION
    session.commit()
    present = session.scalars(select(DiskFile.filename).where(DiskFile.present)).all()
    assert present == [bzipped.name]


def test_a_lost_lease_leases_nothing(session: Session, tmp_path: Path, db_url: str) -> None:
    config, path, queue = _gmos_to_ingest(tmp_path, db_url)
    stale = _claim(session, queue, path.name)
    assert queue.release(session, stale)
    session.commit()
    assert queue.claim(session, Worker("other")) is not None
    queue.add(session, "N20250101S0001.fits")
    session.commit()

    completing = Completion(queue, stale, claim_for=Worker("rows"))
    result = ingest_file(session, config, path.name, completing=completing)

    assert not result.completed and result.claimed is None
    assert _leased(session, config) == [
        ("N20250101S0001.fits", "", "waiting", None),
        (path.name, "", "in_progress", "other"),
    ]


def test_a_lease_clashing_with_another_workers_writes_the_rows_without_it(
    session: Session, tmp_path: Path, db_url: str
) -> None:
    """Another worker leases an entry of the same file (by another path) while the statement
    runs: the unique in-progress index refuses the statement's lease, and the rows are written
    again without one."""
    config, path, queue = _gmos_to_ingest(tmp_path, db_url)
    entry = _claim(session, queue, path.name)
    queue.add(session, "N20250101S0001.fits", "a")
    queue.add(session, "N20250101S0001.fits", "b")
    session.commit()
    table = queue.table
    engine = make_engine(db_url)
    other = engine.connect()
    other_pid = other.execute(select(func.pg_backend_pid())).scalar()
    other.execute(  # leased, not yet committed: the statement's snapshot sees it waiting
        update(table).where(table.c.path == "a").values(status="in_progress", worker="other")
    )
    outcome: dict[str, Any] = {}

    def ingest() -> None:
        completing = Completion(queue, entry, claim_for=Worker("rows"))
        outcome["result"] = ingest_file(session, config, path.name, completing=completing)

    thread = threading.Thread(target=ingest)
    thread.start()
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    with engine.connect() as watcher:
        deadline = time.monotonic() + 30
        while not watcher.execute(waiting, {"pid": other_pid}).scalar():
            assert time.monotonic() < deadline, "the statement never waited on the other lease"
            time.sleep(0.05)
    other.commit()
    thread.join(timeout=30)
    other.close()
    engine.dispose()

    result = outcome["result"]
    assert result.action is IngestAction.NEW and result.completed and result.claimed is None
    assert _leased(session, config) == [
        ("N20250101S0001.fits", "a", "in_progress", "other"),
        ("N20250101S0001.fits", "b", "waiting", None),
    ]


def test_a_write_interrupted_by_the_run_time_limit_is_cancelled_on_the_server(
    tmp_path: Path, db_url: str
) -> None:
    """The write waits on another transaction's row of the same name past
    ``queue_max_run_seconds``: the limit cancels it on the server, so it cannot go on to write
    the rows once that transaction ends (in autocommit it would commit them by itself)."""
    config = make_test_config(tmp_path, db_url, queue_max_run_seconds="2")
    path = copy_gmos_file(config.storage_root)
    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        get_queue("ingest", config).add(session, path.name)
        session.commit()
    done = run_ingest_blocked_on(engine, config, path.name, "--oneshot")
    assert "ran longer than 2s" in done.stderr
    time.sleep(1)  # a statement left running would write its rows now
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(DiskFile)) == 0
        assert session.scalar(select(func.count()).select_from(File)) == 0
    engine.dispose()


def test_the_worker_completes_each_new_file_once(tmp_path: Path, db_url: str) -> None:
    """Through the real worker: each entry completed by ingest's own statement is not
    completed again by the loop (that would log a lost lease), and the next is claimed."""
    config = _fanning_config(tmp_path, db_url)
    names = [copy_gmos_file(config.storage_root, f"S2019080{i}S0001.fits").name for i in (1, 2, 3)]
    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        get_queue("ingest", config).add_many(session, [{"filename": n} for n in names])
        session.commit()
    done = run_cli(config, "service_ingest_queue", "--empty", "--name=rows", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "lease lost" not in done.stderr
    assert "summary: 3 processed" in done.stderr
    with make_session_factory(engine)() as session:
        assert _entries(session, config, "ingest") == []
        assert sorted(f for f, _ in _entries(session, config, "export")) == sorted(names)
    engine.dispose()


@pytest.mark.parametrize("kind", ["obslog", "miscfile"])
def test_summit_files_complete_in_the_same_statement(
    session: Session, tmp_path: Path, db_url: str, kind: str
) -> None:
    """An observing log's or a miscfile's row takes the same one-statement path, exported only."""
    from tests.test_summit_files import MISC, OBSLOG, write_miscfile, write_obslog

    config = _fanning_config(tmp_path, db_url)
    filename, path = (OBSLOG, "obslogs") if kind == "obslog" else (MISC, "")
    (write_obslog if kind == "obslog" else write_miscfile)(config)
    queue = get_queue("ingest", config)
    entry = _claim(session, queue, filename, path)

    result = ingest_file(session, config, filename, path, completing=Completion(queue, entry))

    assert result.action is IngestAction.NEW and result.completed
    assert result.queued == ("export to http://archive.example:8080",)
    assert _entries(session, config, "ingest") == []
    assert _entries(session, config, "export") == [(filename, "waiting")]
    assert _entries(session, config, "preview") == _entries(session, config, "calcache") == []
    model = Obslog if kind == "obslog" else MiscFile
    row = session.scalars(select(model)).one()
    assert row.diskfile_id == result.diskfile_id


def test_a_worker_reads_no_present_version_for_the_entries_its_writes_lease(
    tmp_path: Path, db_url: str
) -> None:
    """Through the queue loop in-process: only the file the loop claimed itself (the first)
    is looked up on its own; every later one came with its write's lease (a lease long enough
    that no claim is due to sweep meanwhile: the loop would make that one itself)."""
    config = make_test_config(tmp_path, db_url, queue_lease_seconds="120")
    names = [copy_gmos_file(config.storage_root, f"S2019080{i}S0001.fits").name for i in (1, 2, 3)]
    engine = make_engine(db_url)
    queue = get_queue("ingest", config)
    with make_session_factory(engine)() as session:
        queue.add_many(session, [{"filename": n} for n in names])
        session.commit()
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))

    make_loop(engine, config, ingest_work, queue).run()

    with make_session_factory(engine)() as session:
        assert _entries(session, config, "ingest") == []
        assert session.scalar(select(func.count()).select_from(DiskFile)) == 3
    engine.dispose()
    present_sql = present_positional().sql
    assert [s for s in sent if s == present_sql] == [present_sql]
