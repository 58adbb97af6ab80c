"""rollcall: present files that vanished are marked not present, changed ones queued for ingest;
on local disk and S3 (moto's server), SQLite and PostgreSQL, and as the real command."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.ingest import ingest_file
from fits_storage.ingest.rollcall import TooManyMissing, rollcall
from fits_storage.orm import DiskFile, IngestQueue
from fits_storage.storage import get_store
from tests.conftest import make_test_config
from tests.fitsdata import make_observatory_file, observatory_filename
from tests.processes import environ_for

pytest_plugins = ["tests.s3server"]
log = logging.getLogger("test_rollcall")


def ingested(session: Session, config: Config, directory: Path, frames: range) -> list[str]:
    """Files made in ``directory``, stored (S3: uploaded) and ingested; their names."""
    names = []
    store = get_store(config)
    for frame in frames:
        source = make_observatory_file(directory, observatory_filename(frame=frame), seed=frame)
        if config.using_s3:
            store.store(source, source.name, "")
        ingest_file(session, config, source.name)
        session.commit()
        names.append(source.name)
    return names


def present(session: Session) -> set[str]:
    session.expire_all()
    names = set(session.scalars(select(DiskFile.filename).where(DiskFile.present)))
    session.rollback()  # SQLite: no write lock kept from the test's side
    return names


def queued(session: Session) -> list[tuple[str, bool]]:
    rows = [
        tuple(row) for row in session.execute(select(IngestQueue.filename, IngestQueue.force_md5))
    ]
    session.rollback()
    return rows


def test_missing_files_are_marked_and_changed_ones_queued(
    session: Session, session_factory: sessionmaker[Session], config: Config
) -> None:
    root = config.storage_root
    gone, kept, resized, same_size = ingested(session, config, root, range(1, 5))
    (root / gone).unlink()
    (root / resized).write_bytes((root / resized).read_bytes() + b"\0" * 2880)
    data = bytearray((root / same_size).read_bytes())
    data[-1] ^= 1  # same size, other bytes: only --md5 sees it
    (root / same_size).write_bytes(bytes(data))
    store = get_store(config)

    dry = rollcall(config, session_factory, store, log, dryrun=True)
    assert (dry.checked, dry.missing, dry.changed) == (4, [gone], [resized])
    assert present(session) == {gone, kept, resized, same_size} and queued(session) == []

    result = rollcall(config, session_factory, store, log, md5=True)
    assert (result.checked, result.missing, result.changed) == (4, [gone], [resized, same_size])
    assert present(session) == {kept, resized, same_size}
    assert sorted(queued(session)) == [(resized, True), (same_size, True)]

    again = rollcall(config, session_factory, store, log)  # the marked one is not checked
    assert (again.checked, again.missing) == (3, [])


def test_too_many_missing_marks_nothing(
    session: Session, session_factory: sessionmaker[Session], config: Config
) -> None:
    names = ingested(session, config, config.storage_root, range(1, 4))
    for name in names:
        (config.storage_root / name).unlink()  # as if the disk were not mounted
    with pytest.raises(TooManyMissing, match="3 of 3 present files are missing"):
        rollcall(config, session_factory, get_store(config), log, max_missing=2)
    assert present(session) == set(names)


def test_objects_gone_from_s3(
    tmp_path: Path,
    session: Session,
    session_factory: sessionmaker[Session],
    db_url: str,
    s3_endpoint: str,
    s3_bucket: str,
) -> None:
    config = make_test_config(
        tmp_path, db_url, using_s3="true", s3_bucket_name=s3_bucket, s3_endpoint_url=s3_endpoint
    )
    gone, kept = ingested(session, config, tmp_path / "src", range(1, 3))
    boto3.client("s3", endpoint_url=s3_endpoint).delete_object(Bucket=s3_bucket, Key=gone)
    result = rollcall(config, session_factory, get_store(config), log, md5=True)
    assert (result.checked, result.missing, result.changed) == (2, [gone], [])
    assert present(session) == {kept}


def run_rollcall(config: Config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.rollcall", *args],
        env=environ_for(config),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command(session: Session, config: Config) -> None:
    gone, kept = ingested(session, config, config.storage_root, range(1, 3))
    (config.storage_root / gone).unlink()

    dry = run_rollcall(config, "--dryrun")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == (
        "checked 2 present files: 1 missing (would be marked not present), 0 changed "
        "(would be queued for ingest)"
    )
    assert f"{gone} is missing ({config.storage_root / gone}): would be marked" in dry.stderr
    assert present(session) == {gone, kept}

    refused = run_rollcall(config, "--max-missing=0")
    assert refused.returncode == 1 and present(session) == {gone, kept}
    assert "nothing was marked" in refused.stderr

    done = run_rollcall(config, "--demon")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert present(session) == {kept}
    log_text = (config.log_dir / "rollcall.log").read_text()
    assert f"{gone} is missing" in log_text and "checked 2 present files: 1 missing" in log_text
