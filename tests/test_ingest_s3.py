"""Ingest from S3 (``using_s3``), against a real S3-compatible server on loopback (moto), on
SQLite and PostgreSQL: the same rows as from disk, read from a verified staging copy that is
gone afterwards; missing or corrupt objects fail for good, an unreachable store is retried."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.ingest import IngestAction, IngestError, IngestResult, ingest_file
from fits_storage.ingest.digest import compression_of, digest_file
from fits_storage.ingest.source import local_copy, staging_dir, stat_stored
from fits_storage.orm import DiskFile, File, FileUploadLog, Header, IngestQueue, UploadQueue
from fits_storage.queues import PermanentError, TransientError, get_queue
from fits_storage.storage import file_md5, get_store
from tests.conftest import make_test_config
from tests.fitsdata import (
    GMOS_HEADER,
    GMOS_ORIGNAME,
    copy_gmos_file,
    header_value_matches,
    make_observatory_file,
)
from tests.processes import environ_for

pytest_plugins = ["tests.s3server"]


@pytest.fixture
def s3_config(tmp_path: Path, db_url: str, s3_endpoint: str, s3_bucket: str) -> Config:
    return make_test_config(
        tmp_path, db_url, using_s3="true", s3_bucket_name=s3_bucket, s3_endpoint_url=s3_endpoint
    )


def put(config: Config, source: Path, path: str = "") -> str:
    """Store ``source`` in S3 as the archive does (md5 in the metadata); returns its name."""
    get_store(config).store(source, source.name, path)
    return source.name


def ingest(session: Session, config: Config, filename: str, path: str = "") -> IngestResult:
    result = ingest_file(session, config, filename, path)
    session.commit()
    return result


def staged_files(config: Config) -> list[Path]:
    folder = staging_dir(config)
    return sorted(folder.rglob("*")) if folder.exists() else []


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_ingests_a_real_file_from_s3(tmp_path: Path, session: Session, s3_config: Config) -> None:
    source = copy_gmos_file(tmp_path / "src")
    name = put(s3_config, source, "2019")
    source_md5 = file_md5(source).md5

    result = ingest(session, s3_config, name, "2019")

    assert result.action is IngestAction.NEW
    diskfile = session.get(DiskFile, result.diskfile_id)
    assert (diskfile.filename, diskfile.path, diskfile.file.name) == (name, "2019", GMOS_ORIGNAME)
    assert diskfile.file_md5 == diskfile.data_md5 == source_md5
    assert diskfile.file_size == diskfile.data_size == source.stat().st_size
    assert diskfile.mtime_ns == stat_stored(s3_config, "2019", name).mtime_ns
    for column, expected in GMOS_HEADER.items():
        assert getattr(diskfile.header, column) == header_value_matches(expected), column
    assert staged_files(s3_config) == []
    assert not (s3_config.storage_root / "2019").exists()  # nothing left on local disk


def test_compressed_file_from_s3(tmp_path: Path, session: Session, s3_config: Config) -> None:
    source = make_observatory_file(tmp_path / "src", "N20251123S0042.fits.bz2")
    name = put(s3_config, source)
    expected = digest_file(source, compression_of(name))

    result = ingest(session, s3_config, name)

    diskfile = session.get(DiskFile, result.diskfile_id)
    assert diskfile.compressed and diskfile.file.name == "N20251123S0042.fits"
    assert (diskfile.file_md5, diskfile.data_md5) == (expected.file_md5, expected.data_md5)
    assert diskfile.header.observation_id == "GN-2025B-Q-101-43"
    assert staged_files(s3_config) == []


def test_reingest_of_an_unchanged_object_is_a_no_op(
    tmp_path: Path, session: Session, s3_config: Config
) -> None:
    name = put(s3_config, make_observatory_file(tmp_path / "src", "N20251123S0001.fits"))
    first = ingest(session, s3_config, name)
    again = ingest(session, s3_config, name)
    assert again.action is IngestAction.UNCHANGED and again.diskfile_id == first.diskfile_id
    put(s3_config, tmp_path / "src" / name)  # the same bytes again: the store leaves them be
    assert ingest(session, s3_config, name).action is IngestAction.UNCHANGED
    assert count(session, DiskFile) == count(session, Header) == 1


def test_same_size_rewrite_within_the_same_second_is_a_new_version(
    tmp_path: Path, session: Session, s3_config: Config
) -> None:
    """S3 times are whole seconds; the md5 kept in the metadata tells the rewrite apart."""
    name = "N20251123S0002.fits"
    first = ingest(session, s3_config, put(s3_config, make_observatory_file(tmp_path / "a", name)))
    rewrite = make_observatory_file(tmp_path / "b", name, seed=1)
    assert rewrite.stat().st_size == (tmp_path / "a" / name).stat().st_size
    put(s3_config, rewrite)
    now = stat_stored(s3_config, "", name)
    session.execute(update(DiskFile).values(mtime_ns=now.mtime_ns))  # as if in the same second
    session.commit()

    second = ingest(session, s3_config, name)

    assert second.action is IngestAction.NEW_VERSION
    assert second.file_md5 == now.md5 == file_md5(rewrite).md5 != first.file_md5
    present = session.scalars(select(DiskFile).where(DiskFile.present)).all()
    assert [d.id for d in present] == [second.diskfile_id]


def test_a_missing_object_is_a_clear_permanent_error(session: Session, s3_config: Config) -> None:
    with pytest.raises(IngestError) as caught:
        ingest_file(session, s3_config, "N20251123S0099.fits", "2025")
    session.rollback()
    message = str(caught.value)
    assert message == (
        "2025/N20251123S0099.fits: file not found in the data store at "
        f"s3://{s3_config.s3_bucket_name}/2025/N20251123S0099.fits"
    )
    assert isinstance(caught.value, PermanentError)
    assert count(session, File) == count(session, DiskFile) == 0


def test_a_vanished_object_marks_its_present_version_not_present(
    tmp_path: Path, session: Session, s3_config: Config
) -> None:
    name = put(s3_config, make_observatory_file(tmp_path / "src"), "2025")
    first = ingest(session, s3_config, name, "2025")
    boto3.client("s3", endpoint_url=s3_config.s3_endpoint_url).delete_object(
        Bucket=s3_config.s3_bucket_name, Key=f"2025/{name}"
    )
    with pytest.raises(IngestError, match=r"is now marked not present$"):
        ingest_file(session, s3_config, name, "2025")
    session.rollback()
    session.expire_all()
    assert not session.get(DiskFile, first.diskfile_id).present


def test_an_object_that_does_not_match_its_md5_is_a_permanent_error(
    session: Session, s3_config: Config, s3_endpoint: str
) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = s3_config.s3_bucket_name
    client.put_object(Bucket=bucket, Key="bad.fits", Body=b"x" * 2880, Metadata={"md5": "0" * 32})
    client.put_object(Bucket=bucket, Key="foreign.fits", Body=b"x" * 2880)  # no md5 kept

    with pytest.raises(IngestError, match=r"^bad\.fits: stored bytes do not match their md5: "):
        ingest_file(session, s3_config, "bad.fits")
    session.rollback()
    with pytest.raises(IngestError, match=r"^foreign\.fits: data store error: .* no md5 in its"):
        ingest_file(session, s3_config, "foreign.fits")
    session.rollback()
    assert count(session, DiskFile) == 0
    assert staged_files(s3_config) == []


def test_the_staging_copy_is_verified_and_removed(
    tmp_path: Path, session: Session, s3_config: Config
) -> None:
    source = make_observatory_file(tmp_path / "src", "N20251123S0003.fits")
    name = put(s3_config, source, "2025")
    with local_copy(s3_config, "2025", name) as copy:
        assert copy.is_relative_to(staging_dir(s3_config)) and copy.name == name
        assert file_md5(copy) == file_md5(source)
    assert not copy.exists() and staged_files(s3_config) == []

    broken = tmp_path / "src" / "N20251123S0004.fits"
    broken.write_bytes(source.read_bytes()[:-4000])
    put(s3_config, broken)
    with pytest.raises(IngestError, match="truncated"):
        ingest_file(session, s3_config, broken.name)
    session.rollback()
    assert staged_files(s3_config) == []  # removed on failure too


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_config(tmp_path: Path, db_url: str, bucket: str) -> Config:
    return make_test_config(
        tmp_path,
        db_url,
        using_s3="true",
        s3_bucket_name=bucket,
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # ~15 s each: one backend will do
def test_an_unreachable_store_is_a_transient_error(
    tmp_path: Path, db_url: str, session: Session, s3_bucket: str
) -> None:
    """Slowish: the S3 client retries a refused connection with backoff before giving up."""
    config = unreachable_config(tmp_path, db_url, s3_bucket)
    with pytest.raises(TransientError, match=r"^N20251123S0005\.fits: data store unavailable"):
        ingest_file(session, config, "N20251123S0005.fits")
    session.rollback()
    assert count(session, DiskFile) == 0


def test_a_store_gone_between_stat_and_fetch_is_a_transient_error(
    tmp_path: Path, s3_bucket: str
) -> None:
    """The fetch, not only the stat, reports an unreachable store as worth retrying."""
    config = unreachable_config(tmp_path, "sqlite://", s3_bucket)
    with pytest.raises(TransientError, match=r"^2025/x\.fits: data store unavailable"):
        with local_copy(config, "2025", "x.fits"):
            pytest.fail("no copy can be made")
    assert staged_files(config) == []


def run(config: Config, module: str, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"fits_storage.cli.{module}", "--name=s3", *args],
        env=environ_for(config),  # with the dummy AWS credentials s3_bucket put in os.environ
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.slow
def test_upload_stored_in_s3_then_ingested_from_it(
    tmp_path: Path, session: Session, s3_config: Config, s3_endpoint: str
) -> None:
    """ingest_uploaded_file stores the staged upload in S3 and queues it; service_ingest_queue
    ingests it from there. Nothing stays on local disk."""
    name = "N20251123S0042.fits.bz2"
    source = make_observatory_file(tmp_path / "src", name)
    expected = digest_file(source, "bz2")
    staged = s3_config.upload_staging_dir / "2025" / name
    staged.parent.mkdir(parents=True)
    staged.write_bytes(source.read_bytes())
    session.add(
        FileUploadLog(filename=name, path="2025", size=expected.file_size, md5=expected.file_md5)
    )
    get_queue("upload", s3_config).add(session, name, "2025")
    session.commit()

    run(s3_config, "ingest_uploaded_file", "--empty")
    head = boto3.client("s3", endpoint_url=s3_endpoint).head_object(
        Bucket=s3_config.s3_bucket_name, Key=f"2025/{name}"
    )
    assert head["Metadata"]["md5"] == expected.file_md5
    assert not staged.exists()
    assert session.execute(select(IngestQueue.filename, IngestQueue.path)).all() == [(name, "2025")]
    session.commit()

    run(s3_config, "service_ingest_queue", "--empty", "--no-defer")

    [diskfile] = session.scalars(select(DiskFile)).all()
    assert (diskfile.filename, diskfile.path, diskfile.present) == (name, "2025", True)
    assert (diskfile.file_md5, diskfile.data_md5) == (expected.file_md5, expected.data_md5)
    assert diskfile.header.data_label == "GN-2025B-Q-101-43-042"
    assert session.scalars(select(IngestQueue)).all() == []
    assert session.scalars(select(UploadQueue)).all() == []
    assert staged_files(s3_config) == []
    assert not (s3_config.storage_root / "2025").exists()
    assert os.listdir(s3_config.upload_staging_dir / "2025") == []
