"""The fileops queue's work in-process, on both databases: header edits that change only the
header, keep compression, apply once (also across a crash after the rename), are audited in
``updatelog`` and queue the file for ingest; on local disk and through S3."""

from __future__ import annotations

import hashlib
import json
import subprocess
import warnings
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.db.engine import make_session_factory
from fits_storage.fileops import work as fileops_module
from fits_storage.fileops.edit import BLOCK
from fits_storage.fileops.request import HeaderUpdate, queue_update
from fits_storage.fileops.values import keyword_changes
from fits_storage.fileops.work import fileops_work
from fits_storage.ingest.verify import fitsverify_program
from fits_storage.orm import FileopsQueue, IngestQueue, UpdateLog
from fits_storage.queues import get_queue
from fits_storage.storage import get_store
from tests import fitsdata
from tests.conftest import make_test_config
from tests.loops import make_loop

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
    assert (log.md5_before, log.md5_after) == (before_md5, md5(path))
    assert log.applied is not None
    [ingest] = rows(session, IngestQueue)
    assert (ingest.filename, ingest.complete) == (NAME, True)
    assert rows(session, FileopsQueue) == []


def test_the_same_request_twice_changes_the_file_once(
    engine: Engine, session: Session, config: Config
) -> None:
    path = fitsdata.make_observatory_file(config.storage_root, NAME)
    first = request(session, config, NAME, {"release": "2030-01-02"})
    run_queue(engine, config)
    edited = md5(path)
    mtime = path.stat().st_mtime_ns
    second = request(session, config, NAME, {"release": "2030-01-02"})
    run_queue(engine, config)
    assert md5(path) == edited and path.stat().st_mtime_ns == mtime
    logs = {log.request_id: log for log in rows(session, UpdateLog)}
    assert logs[first].md5_before != logs[first].md5_after == edited
    assert logs[second].md5_before == logs[second].md5_after == edited
    assert json.loads(logs[second].old_values) == {"RELEASE": "2030-01-02"}


def test_a_compressed_file_stays_compressed(
    engine: Engine, session: Session, config: Config
) -> None:
    path = fitsdata.make_observatory_file(config.storage_root, NAME + ".bz2")
    with fits.open(path) as hdulist:
        pixels = [hdu.data.copy() for hdu in hdulist[1:]]
    request(session, config, NAME + ".bz2", {"generic": [["SSA", "A. Person"], ["SEEING", 0.8]]})
    run_queue(engine, config)
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
    path = fitsdata.make_observatory_file(config.storage_root, NAME)
    original = md5(path)
    request_id = request(session, config, NAME, {"qa_state": "Usable"})
    real = fileops_module.utcnow

    def die_once():  # noqa: ANN202
        monkeypatch.setattr(fileops_module, "utcnow", real)
        raise RuntimeError("killed")  # the transaction of the completion rolls back

    monkeypatch.setattr(fileops_module, "utcnow", die_once)
    run_queue(engine, config)
    [pending] = rows(session, UpdateLog)
    assert pending.md5_after is None and pending.md5_before == original
    assert fits.getheader(path)["RAWPIREQ"] == "NO"  # the edit is in place
    assert rows(session, IngestQueue) == []
    with make_session_factory(engine)() as other:  # handed out again, as after a kill
        other.execute(FileopsQueue.__table__.update().values(status="waiting", after=None))
        other.commit()
    run_queue(engine, config)
    [log] = rows(session, UpdateLog)
    assert log.request_id == request_id
    assert json.loads(log.old_values) == {"RAWGEMQA": "USABLE", "RAWPIREQ": "YES"}
    assert (log.md5_before, log.md5_after) == (original, md5(path))
    assert [e.filename for e in rows(session, IngestQueue)] == [NAME]


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
        update = HeaderUpdate(changes=keyword_changes({"qa_state": "Fail"}), requester="t")
        queue_update(session, config, NAME, "2025", update)
        session.commit()
    run_queue(engine, config)
    fetched = tmp_path / "fetched.fits"
    store.fetch(NAME, "2025", fetched)
    assert fits.getheader(fetched)["RAWGEMQA"] == "BAD"
    with make_session_factory(engine)() as session:
        [log] = session.scalars(select(UpdateLog)).all()
        assert log.md5_after == store.info(NAME, "2025").md5 == md5(fetched)
        [entry] = session.scalars(select(IngestQueue)).all()
        assert entry.path == "2025"
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
