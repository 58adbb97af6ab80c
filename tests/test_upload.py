"""ingest_uploaded_file: staged uploads into the data store (local and S3), crash-safe re-runs,
and the real command fed by the real web app."""

from __future__ import annotations

import bz2
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.orm import DiskFile, FileUploadLog, IngestQueue, UploadQueue
from fits_storage.queues import PermanentError, get_queue
from fits_storage.storage import LocalStore, StorageUnavailable, StoredFile, file_md5
from fits_storage.storage.s3 import S3Store
from fits_storage.upload import StoreOutcome, store_upload
from fits_storage.upload.store import claimed_path
from tests.conftest import config_environ, make_test_config
from tests.fitsdata import fits_bytes, make_observatory_file
from tests.processes import environ_for
from tests.test_web import COOKIES, SECRET, ServerThread, files_under, free_port

pytest_plugins = ["tests.s3server"]


def stage(config: Config, session: Session, filename: str, path: str, data: bytes) -> StoredFile:
    """What the web app does for one upload: staged file, log row, upload entry."""
    staged = config.upload_staging_dir / path / filename
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(data)
    received = StoredFile(len(data), hashlib.md5(data).hexdigest())
    session.add(FileUploadLog(filename=filename, path=path, size=received.size, md5=received.md5))
    get_queue("upload", config).add(session, filename, path)
    session.commit()
    return received


def ingest_entries(session: Session) -> list[tuple[str, str, str]]:
    rows = session.execute(select(IngestQueue.filename, IngestQueue.path, IngestQueue.status))
    return sorted(tuple(r) for r in rows)


def log_rows(session: Session) -> list[tuple[str, bool | None, bool]]:
    rows = session.scalars(select(FileUploadLog).order_by(FileUploadLog.id))
    return [(r.md5, r.ok, r.stored is not None) for r in rows]


def test_stores_locally_and_queues_ingest(config: Config, session: Session) -> None:
    data = bz2.compress(fits_bytes(os.urandom(100_000)))
    received = stage(config, session, "N20251123S0042.fits.bz2", "2025", data)
    outcome = store_upload(session, config, "N20251123S0042.fits.bz2", "2025")
    session.commit()
    assert outcome is StoreOutcome.STORED
    stored = config.storage_root / "2025" / "N20251123S0042.fits.bz2"
    assert stored.read_bytes() == data
    assert files_under(config.upload_staging_dir) == []
    assert ingest_entries(session) == [("N20251123S0042.fits.bz2", "2025", "waiting")]
    assert log_rows(session) == [(received.md5, True, True)]
    # a duplicate entry later: nothing to do, nothing changed
    assert store_upload(session, config, "N20251123S0042.fits.bz2", "2025") is (
        StoreOutcome.NOTHING_TO_DO
    )


def test_crash_before_commit_is_finished_by_a_rerun(config: Config, session: Session) -> None:
    received = stage(config, session, "x.fits", "", b"abc" * 1000)
    store_upload(session, config, "x.fits")
    session.rollback()  # killed after removing the staged file, before the commit
    assert files_under(config.upload_staging_dir) == []
    assert ingest_entries(session) == [] and log_rows(session) == [(received.md5, None, False)]
    assert store_upload(session, config, "x.fits") is StoreOutcome.RECOVERED
    session.commit()
    assert ingest_entries(session) == [("x.fits", "", "waiting")]
    assert log_rows(session) == [(received.md5, True, True)]


def test_crash_after_claiming_is_finished_by_a_rerun(config: Config, session: Session) -> None:
    stage(config, session, "x.fits", "a", b"claimed bytes")
    staged = config.upload_staging_dir / "a" / "x.fits"
    os.replace(staged, claimed_path(staged))  # killed right after step 1
    partial = config.storage_root / "a" / ".x.fits.junk.part"  # and mid-copy in an older run
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"claim")
    assert store_upload(session, config, "x.fits", "a") is StoreOutcome.STORED
    session.commit()
    assert (config.storage_root / "a" / "x.fits").read_bytes() == b"claimed bytes"
    assert files_under(config.upload_staging_dir) == []


def test_newer_upload_supersedes_a_claimed_one(config: Config, session: Session) -> None:
    old = stage(config, session, "x.fits", "", b"old")
    staged = config.upload_staging_dir / "x.fits"
    os.replace(staged, claimed_path(staged))
    new = stage(config, session, "x.fits", "", b"new")
    assert store_upload(session, config, "x.fits") is StoreOutcome.STORED
    session.commit()
    assert (config.storage_root / "x.fits").read_bytes() == b"new"
    assert log_rows(session) == [(old.md5, False, False), (new.md5, True, True)]
    assert files_under(config.upload_staging_dir) == []


def test_a_newer_upload_is_never_deleted(config: Config, session: Session) -> None:
    """Arriving while the older one is being stored, the newer upload stays for its own entry."""
    stage(config, session, "x.fits", "", b"old")

    class SlowStore(LocalStore):
        def store(self, source: Path, filename: str, path: str = "", **kw: object) -> StoredFile:
            result = super().store(source, filename, path)
            stage(config, session, "x.fits", "", b"new")  # the web app renames onto x.fits
            return result

    store_upload(session, config, "x.fits", store=SlowStore(config.storage_root))
    session.commit()
    assert (config.upload_staging_dir / "x.fits").read_bytes() == b"new"
    assert store_upload(session, config, "x.fits") is StoreOutcome.STORED
    assert (config.storage_root / "x.fits").read_bytes() == b"new"


def test_nothing_staged_nor_stored_is_a_permanent_error(config: Config, session: Session) -> None:
    with pytest.raises(PermanentError, match="upload it again"):
        store_upload(session, config, "missing.fits")


def test_stores_in_s3(tmp_path: Path, db_url: str, s3_endpoint: str, s3_bucket: str) -> None:
    from fits_storage.db.engine import make_engine, make_session_factory

    config = make_test_config(
        tmp_path, db_url, using_s3="true", s3_bucket_name=s3_bucket, s3_endpoint_url=s3_endpoint
    )
    engine = make_engine(db_url)
    data = os.urandom(7 * 1024 * 1024)
    try:
        with make_session_factory(engine)() as session:
            received = stage(config, session, "N20251123S0042.fits", "2025", data)
            store = S3Store(
                s3_bucket, s3_endpoint, multipart_threshold=5 << 20, multipart_chunksize=5 << 20
            )
            assert store_upload(session, config, "N20251123S0042.fits", "2025", store=store) is (
                StoreOutcome.STORED
            )
            session.commit()
            assert ingest_entries(session) == [("N20251123S0042.fits", "2025", "waiting")]
            assert log_rows(session) == [(received.md5, True, True)]
    finally:
        engine.dispose()
    head = boto3.client("s3", endpoint_url=s3_endpoint).head_object(
        Bucket=s3_bucket, Key="2025/N20251123S0042.fits"
    )
    assert head["Metadata"]["md5"] == received.md5
    assert files_under(config.upload_staging_dir) == []
    assert not (config.storage_root / "2025").exists()
    with store.local_copy("N20251123S0042.fits", "2025", tmp_path / "work") as copy:
        assert file_md5(copy) == received


def test_s3_down_keeps_the_staged_file(
    tmp_path: Path, config: Config, session: Session, s3_bucket: str
) -> None:
    received = stage(config, session, "x.fits", "", b"precious")
    dead = f"http://127.0.0.1:{free_port()}"
    client = boto3.client("s3", endpoint_url=dead, config=BotoConfig(retries={"max_attempts": 1}))
    with pytest.raises(StorageUnavailable):
        store_upload(session, config, "x.fits", store=S3Store(s3_bucket, dead, client=client))
    session.rollback()
    staged = config.upload_staging_dir / "x.fits"
    assert claimed_path(staged).read_bytes() == b"precious"
    assert store_upload(session, config, "x.fits") is StoreOutcome.STORED  # store back: done
    session.commit()
    assert log_rows(session) == [(received.md5, True, True)]


def test_command_stores_what_the_web_app_received(
    tmp_path: Path, db_url: str, session_factory: sessionmaker[Session]
) -> None:
    config = make_test_config(tmp_path, db_url, upload_auth_cookie=SECRET)
    bodies = {
        f"N20251123S00{i:02d}.fits.bz2": bz2.compress(fits_bytes(os.urandom(50_000 + i)))
        for i in range(5)
    }
    with ServerThread(config) as server:
        for name, body in bodies.items():
            answer = requests.post(
                f"{server.url}/upload_file/2025/{name}", data=body, cookies=COOKIES
            )
            assert answer.status_code == 200, answer.text
    result = subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.ingest_uploaded_file", "--empty"],
        env=config_environ(config),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    for name, body in bodies.items():
        assert (config.storage_root / "2025" / name).read_bytes() == body
    assert files_under(config.upload_staging_dir) == []
    with session_factory() as session:
        assert ingest_entries(session) == [(name, "2025", "waiting") for name in sorted(bodies)]
        assert session.scalars(select(UploadQueue)).all() == []
        assert all(ok and stored for _, ok, stored in log_rows(session))


def test_stored_uploads_are_ingested_at_once_not_deferred(
    tmp_path: Path, config: Config, session: Session
) -> None:
    """``ingest_uploaded_file --empty && service_ingest_queue --empty`` ingests the upload:
    the store wrote it atomically, so "recently modified" does not defer it."""
    source = make_observatory_file(tmp_path / "src", "N20251123S0042.fits")
    stage(config, session, source.name, "2025", source.read_bytes())
    env = environ_for(config, FITS_STORAGE_DEFER_THRESHOLD="3600")
    for command in ("ingest_uploaded_file", "service_ingest_queue"):
        result = subprocess.run(
            [sys.executable, "-m", f"fits_storage.cli.{command}", "--empty"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    assert session.scalars(select(DiskFile.filename)).all() == [source.name]
    assert ingest_entries(session) == []
