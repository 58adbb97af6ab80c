"""The fileops queue's work in-process, on both databases: header edits that change only the
header, keep compression, apply once (also across a crash after the rename), are audited in
``updatelog`` and queue the file for ingest, whose new version gives the row its md5 after; on
local disk and through S3."""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import warnings
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.db.engine import make_session_factory
from fits_storage.fileops import work as fileops_module
from fits_storage.fileops.edit import BLOCK
from fits_storage.fileops.request import HeaderUpdate, queue_update
from fits_storage.fileops.values import keyword_changes
from fits_storage.fileops.work import fileops_work
from fits_storage.ingest import ingest_work
from fits_storage.ingest.ingest import ingest_file
from fits_storage.ingest.verify import fitsverify_program
from fits_storage.orm import DiskFile, FileopsQueue, IngestQueue, UpdateLog
from fits_storage.queues import get_queue
from fits_storage.storage import get_store
from tests import fitsdata
from tests.conftest import make_test_config
from tests.loops import make_loop
from tests.processes import wait_for

pytest_plugins = ["tests.s3server"]

NAME = "N20251123S0042.fits"


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    return make_test_config(tmp_path, db_url)


def request(session: Session, config: Config, name: str, values: dict, **kw) -> str:
    update = HeaderUpdate(
        changes=keyword_changes(values),
        values=values,
        requester="test",
        requested="2026-12-03T07:00:00",
        **kw,
    )
    request_id = queue_update(session, config, name, "", update)
    session.commit()
    return request_id


def run_queue(engine: Engine, config: Config) -> None:
    make_loop(engine, config, fileops_work, get_queue("fileops", config)).run()


def run_ingest(engine: Engine, config: Config) -> None:
    """The ingest worker, until its queue is empty (what follows every edit)."""
    make_loop(engine, config, ingest_work, get_queue("ingest", config)).run()


def ingested(session: Session, config: Config, path: Path) -> Path:
    """``path`` (a file of the storage root) ingested: a request names an ingested file."""
    ingest_file(session, config, path.name)
    session.commit()
    return path


def data_after_primary_header(path: Path) -> bytes:
    """Every byte after the primary header (the primary data and the extensions)."""
    with fits.open(path) as hdulist:
        offset = hdulist[0]._data_offset
    return path.read_bytes()[offset:]


def rows(session: Session, model: type) -> list:
    """The table's rows, detached, with no transaction left open (SQLite's write lock)."""
    session.rollback()
    found = list(session.scalars(select(model)))
    session.expunge_all()
    session.rollback()
    return found


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_qa_state_edit_changes_only_the_header(
    engine: Engine, session: Session, config: Config
) -> None:
    path = fitsdata.make_observatory_file(config.storage_root, NAME, drop=("RAWIQ",))
    ingested(session, config, path)
    before_md5, data_before = md5(path), data_after_primary_header(path)
    request_id = request(session, config, NAME, {"qa_state": "Fail", "raw_site": "iqany"})
    run_queue(engine, config)

    with fits.open(path) as hdulist:
        assert hdulist[0].header["RAWGEMQA"] == "BAD"
        assert hdulist[0].header["RAWPIREQ"] == "NO"
        assert hdulist[0].header["RAWIQ"] == "Any"
        assert len(hdulist) == 4
    assert data_after_primary_header(path) == data_before
    assert path.stat().st_size % BLOCK == 0
    assert not list(path.parent.glob(".*.part"))
    [log] = rows(session, UpdateLog)
    assert log.request_id == request_id and log.requester == "test"
    assert json.loads(log.old_values) == {"RAWGEMQA": "USABLE", "RAWPIREQ": "YES", "RAWIQ": None}
    assert json.loads(log.new_values) == {"RAWGEMQA": "BAD", "RAWPIREQ": "NO", "RAWIQ": "Any"}
    assert (log.md5_before, log.md5_after) == (before_md5, None)  # the edit hashes no new byte
    assert log.applied is not None
    [ingest] = rows(session, IngestQueue)
    assert (ingest.filename, ingest.complete) == (NAME, True)
    assert rows(session, FileopsQueue) == []

    run_ingest(engine, config)
    [log] = rows(session, UpdateLog)
    assert log.md5_after == md5(path) != log.md5_before
    [version] = [v for v in rows(session, DiskFile) if v.present]
    assert version.file_md5 == log.md5_after


def test_the_same_request_twice_changes_the_file_once(
    engine: Engine, session: Session, config: Config
) -> None:
    path = ingested(session, config, fitsdata.make_observatory_file(config.storage_root, NAME))
    first = request(session, config, NAME, {"release": "2030-01-02"})
    run_queue(engine, config)
    run_ingest(engine, config)
    edited = md5(path)
    mtime = path.stat().st_mtime_ns
    second = request(session, config, NAME, {"release": "2030-01-02"})
    run_queue(engine, config)
    assert md5(path) == edited and path.stat().st_mtime_ns == mtime
    assert rows(session, IngestQueue) == []  # nothing changed: nothing to ingest
    logs = {log.request_id: log for log in rows(session, UpdateLog)}
    assert logs[first].md5_before != logs[first].md5_after == edited
    assert logs[second].md5_before == logs[second].md5_after == edited  # complete at once
    assert logs[second].applied is not None
    assert json.loads(logs[second].old_values) == {"RELEASE": "2030-01-02"}


def test_a_request_handed_out_again_once_applied_does_nothing(
    engine: Engine, session: Session, config: Config
) -> None:
    """``applied`` marks the request done, though its md5 after is still to come."""
    path = ingested(session, config, fitsdata.make_observatory_file(config.storage_root, NAME))
    update = HeaderUpdate(changes=keyword_changes({"qa_state": "Fail"}), requester="test")
    request_id = request(session, config, NAME, {"qa_state": "Fail"})
    run_queue(engine, config)
    [log] = rows(session, UpdateLog)
    assert log.md5_after is None and log.applied is not None
    edited, applied = md5(path), log.applied
    session.execute(IngestQueue.__table__.delete())
    get_queue("fileops", config).add(
        session, NAME, "", request_id=request_id, request=update.dumps(), requester="test"
    )
    session.commit()
    run_queue(engine, config)
    [log] = rows(session, UpdateLog)
    assert log.applied == applied and md5(path) == edited
    assert rows(session, IngestQueue) == [] and rows(session, FileopsQueue) == []


def test_a_request_the_file_already_holds_is_logged_complete_and_queues_nothing(
    engine: Engine, session: Session, config: Config
) -> None:
    path = fitsdata.make_observatory_file(config.storage_root, NAME)  # RAWGEMQA = 'USABLE'
    before, mtime = md5(path), path.stat().st_mtime_ns
    request_id = request(session, config, NAME, {"generic": {"RAWGEMQA": "USABLE"}})
    run_queue(engine, config)
    assert md5(path) == before and path.stat().st_mtime_ns == mtime
    [log] = rows(session, UpdateLog)
    assert log.request_id == request_id and log.applied is not None
    assert log.md5_before == log.md5_after == before
    assert rows(session, IngestQueue) == [] and rows(session, FileopsQueue) == []


def test_two_edits_before_the_ingest_each_get_their_own_md5_after(
    engine: Engine, session: Session, config: Config
) -> None:
    """The second edit's md5 before is the first's md5 after (the ingest, running after both,
    only sees the second's bytes)."""
    path = ingested(session, config, fitsdata.make_observatory_file(config.storage_root, NAME))
    first = request(session, config, NAME, {"qa_state": "Fail"})
    run_queue(engine, config)
    after_first = md5(path)
    second = request(session, config, NAME, {"qa_state": "CHECK"})
    run_queue(engine, config)
    logs = {log.request_id: log for log in rows(session, UpdateLog)}
    assert (logs[first].md5_after, logs[second].md5_before) == (after_first, after_first)
    assert logs[second].md5_after is None
    run_ingest(engine, config)
    logs = {log.request_id: log for log in rows(session, UpdateLog)}
    assert logs[first].md5_after == after_first
    assert logs[second].md5_after == md5(path) != after_first


def test_an_edit_undone_before_the_ingest_gets_its_md5_after(
    engine: Engine, session: Session, config: Config
) -> None:
    """The second edit restores the bytes ingest recorded: ingest finds the md5 unchanged and
    records no version, only the new mtime; the row still gets its md5 after."""
    path = ingested(session, config, fitsdata.make_observatory_file(config.storage_root, NAME))
    original = md5(path)
    request(session, config, NAME, {"qa_state": "Fail"})
    run_queue(engine, config)
    undo = request(session, config, NAME, {"qa_state": "Pass"})  # USABLE / YES, as before
    run_queue(engine, config)
    assert md5(path) == original
    run_ingest(engine, config)
    assert len(rows(session, DiskFile)) == 1
    logs = {log.request_id: log for log in rows(session, UpdateLog)}
    assert logs[undo].md5_after == original
    assert all(log.md5_after for log in logs.values())


def test_a_compressed_file_stays_compressed(
    engine: Engine, session: Session, config: Config
) -> None:
    path = fitsdata.make_observatory_file(config.storage_root, NAME + ".bz2")
    with fits.open(path) as hdulist:
        pixels = [hdu.data.copy() for hdu in hdulist[1:]]
    ingested(session, config, path)
    request(session, config, NAME + ".bz2", {"generic": [["SSA", "A. Person"], ["SEEING", 0.8]]})
    run_queue(engine, config)
    run_ingest(engine, config)
    assert path.read_bytes()[:3] == b"BZh"
    with fits.open(path) as hdulist:
        assert hdulist[0].header["SSA"] == "A. Person"
        assert hdulist[0].header["SEEING"] == 0.8
        for hdu, before in zip(hdulist[1:], pixels, strict=True):
            assert (hdu.data == before).all()
    [log] = rows(session, UpdateLog)
    assert log.md5_after == md5(path)


def test_a_header_that_needs_another_block_grows_by_one(
    engine: Engine, session: Session, config: Config
) -> None:
    path = fitsdata.make_observatory_file(config.storage_root, NAME)
    size, data_before = path.stat().st_size, data_after_primary_header(path)
    generic = {f"NOTE{i:04d}": f"note number {i}" for i in range(40)}
    request(session, config, NAME, {"generic": generic})
    run_queue(engine, config)
    assert path.stat().st_size == size + BLOCK
    assert data_after_primary_header(path) == data_before
    with fits.open(path) as hdulist:
        assert hdulist[0].header["NOTE0039"] == "note number 39"


def test_reject_new_refuses_a_keyword_the_file_lacks(
    engine: Engine, session: Session, config: Config
) -> None:
    path = fitsdata.make_observatory_file(config.storage_root, NAME)
    before = md5(path)
    request(session, config, NAME, {"generic": {"RAWIQQ": "Any"}}, reject_new=True)
    run_queue(engine, config)
    assert md5(path) == before
    [entry] = rows(session, FileopsQueue)
    assert entry.status == "failed"
    assert "reject_new: the primary header has no RAWIQQ" in entry.error
    assert rows(session, UpdateLog) == [] and rows(session, IngestQueue) == []


def test_killed_after_the_rename_the_rerun_logs_the_request_once(
    engine: Engine, session: Session, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt dies after the new file is in place and before its transaction
    commits; the next one finishes the record with the first attempt's "before" values."""
    path = ingested(session, config, fitsdata.make_observatory_file(config.storage_root, NAME))
    original = md5(path)
    request_id = request(session, config, NAME, {"qa_state": "Usable"})
    killed_after_the_rename(engine, session, config, monkeypatch)
    assert fits.getheader(path)["RAWPIREQ"] == "NO"  # the edit is in place
    run_queue(engine, config)
    [log] = rows(session, UpdateLog)
    assert log.request_id == request_id and log.applied is not None
    assert json.loads(log.old_values) == {"RAWGEMQA": "USABLE", "RAWPIREQ": "YES"}
    assert (log.md5_before, log.md5_after) == (original, None)
    assert [e.filename for e in rows(session, IngestQueue)] == [NAME]  # the edit counts
    run_ingest(engine, config)
    [log] = rows(session, UpdateLog)
    assert log.md5_after == md5(path) != original


def killed_after_the_rename(
    engine: Engine, session: Session, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the queue's first attempt, which dies after the new file is in place and before its
    transaction commits; leave its entry to be handed out again, as after a kill."""
    real = fileops_module.utcnow

    def die_once():  # noqa: ANN202
        monkeypatch.setattr(fileops_module, "utcnow", real)
        raise RuntimeError("killed")  # the transaction of the completion rolls back

    monkeypatch.setattr(fileops_module, "utcnow", die_once)
    queued = len(rows(session, IngestQueue))
    run_queue(engine, config)
    [pending] = [log for log in rows(session, UpdateLog) if log.applied is None]
    assert pending.md5_after is None
    assert len(rows(session, IngestQueue)) == queued
    with make_session_factory(engine)() as other:
        other.execute(FileopsQueue.__table__.update().values(status="waiting", after=None))
        other.commit()


def test_an_ingest_between_the_rename_and_the_commit_still_gives_the_md5_after(
    engine: Engine, session: Session, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ingest (a scan's) records the new bytes while the row is not yet applied, so it
    leaves md5_after empty; the rerun's commit fills it from that version (the ingest it
    queues finds the file unchanged and records nothing)."""
    path = ingested(session, config, fitsdata.make_observatory_file(config.storage_root, NAME))
    original = md5(path)
    request(session, config, NAME, {"qa_state": "Usable"})
    killed_after_the_rename(engine, session, config, monkeypatch)
    ingested(session, config, path)
    [pending] = rows(session, UpdateLog)
    assert (pending.applied, pending.md5_after) == (None, None)
    run_queue(engine, config)
    [log] = rows(session, UpdateLog)
    assert (log.md5_before, log.md5_after) == (original, md5(path))
    run_ingest(engine, config)
    assert len(rows(session, DiskFile)) == 2
    [log] = rows(session, UpdateLog)
    assert log.md5_after == md5(path)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite's write lock
@pytest.mark.parametrize("undo", [False, True], ids=["new-version", "mtime-refreshed"])
def test_an_ingest_committing_during_the_reruns_commit_is_waited_for(
    engine: Engine, session: Session, config: Config, monkeypatch: pytest.MonkeyPatch, undo: bool
) -> None:
    """PostgreSQL: an ingest has recorded the new bytes, its transaction still open (the row
    not yet applied: it left md5_after empty), when the rerun's commit looks for that version:
    the locks make the rerun wait for the ingest and then see it. The ingest records a new
    version (the ``file`` row's lock) or, when the edit restored the bytes it had recorded
    (``undo``: an earlier edit reverted, not yet ingested), the new mtime of that version
    (the version's row lock)."""
    assert engine.dialect.name == "postgresql"  # on SQLite the write lock serialises the two
    path = ingested(session, config, fitsdata.make_observatory_file(config.storage_root, NAME))
    if undo:
        request(session, config, NAME, {"qa_state": "Fail"})
        run_queue(engine, config)
    request(session, config, NAME, {"qa_state": "Pass" if undo else "Usable"})
    killed_after_the_rename(engine, session, config, monkeypatch)
    with make_session_factory(engine)() as scan:
        ingest_file(scan, config, NAME)  # holds the file row's lock until it commits
        pid = scan.scalar(text("SELECT pg_backend_pid()"))
        worker = threading.Thread(target=run_queue, args=(engine, config))
        worker.start()

        def rerun_waits() -> bool:
            with engine.connect() as probe:
                return bool(
                    probe.scalar(
                        text("SELECT count(*) FROM pg_stat_activity "
                             "WHERE :pid = ANY(pg_blocking_pids(pid))"),
                        {"pid": pid},
                    )
                )  # fmt: skip

        wait_for(lambda: rerun_waits() or not worker.is_alive(), 60, "the rerun's commit")
        scan.commit()
    worker.join(60)
    assert len(rows(session, DiskFile)) == (1 if undo else 2)
    for log in rows(session, UpdateLog):
        assert log.applied is not None and log.md5_after is not None
    assert log.md5_after == md5(path)


def test_edit_through_s3(
    tmp_path: Path, db_url: str, s3_endpoint: str, s3_bucket: str, engine: Engine
) -> None:
    config = make_test_config(
        tmp_path, db_url, using_s3="true", s3_bucket_name=s3_bucket, s3_endpoint_url=s3_endpoint
    )
    source = fitsdata.make_observatory_file(tmp_path / "src", NAME)
    store = get_store(config)
    store.store(source, NAME, "2025")
    with make_session_factory(engine)() as session:
        ingest_file(session, config, NAME, "2025")
        update = HeaderUpdate(changes=keyword_changes({"qa_state": "Fail"}), requester="t")
        queue_update(session, config, NAME, "2025", update)
        session.commit()
    run_queue(engine, config)
    fetched = tmp_path / "fetched.fits"
    store.fetch(NAME, "2025", fetched)
    assert fits.getheader(fetched)["RAWGEMQA"] == "BAD"
    with make_session_factory(engine)() as session:
        [log] = session.scalars(select(UpdateLog)).all()
        assert (log.md5_before, log.md5_after) == (md5(source), None)
        assert log.applied is not None
        [entry] = session.scalars(select(IngestQueue)).all()
        assert entry.path == "2025"
    run_ingest(engine, config)
    with make_session_factory(engine)() as session:
        [log] = session.scalars(select(UpdateLog)).all()
        assert log.md5_after == store.info(NAME, "2025").md5 == md5(fetched)
    assert not list((config.storage_root).rglob("*.fits"))  # nothing left on local disk


def test_a_checksummed_file_still_verifies(
    engine: Engine, session: Session, config: Config
) -> None:
    path = fitsdata.make_observatory_file(config.storage_root, NAME)
    with fits.open(path) as hdulist:
        hdulist.writeto(path, checksum=True, overwrite=True)
    request(session, config, NAME, {"qa_state": "Fail"})
    run_queue(engine, config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(path, checksum=True) as hdulist:
            assert hdulist[0].header["RAWGEMQA"] == "BAD"
            assert all(hdu.header["CHECKSUM"] for hdu in hdulist)
    if verifier := fitsverify_program():
        result = subprocess.run([verifier, "-e", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
