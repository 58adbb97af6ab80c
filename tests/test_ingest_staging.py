"""Compressed files decompressed once into a private staging copy; fitsverify run beside."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.ingest import IngestError, ingest_file
from fits_storage.ingest.digest import digest_file
from fits_storage.ingest.ingest import decompress_staging_dir
from fits_storage.ingest.verify import fitsverify_program, start_fitsverify
from fits_storage.orm import DiskFile, DiskFileReport
from fits_storage.queues.errors import TransientError
from tests.fitsdata import make_observatory_file, observatory_filename, write_truncated

STAGING = ".ingest_staging"


def staged(config: Config) -> list[Path]:
    folder = decompress_staging_dir(config)
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("kind", ["bz2", "gz"])
def test_compressed_file_is_staged_once_and_removed(
    session: Session, config: Config, kind: str
) -> None:
    name = observatory_filename(frame=31)
    plain = make_observatory_file(config.storage_root / "work", name)
    data = plain.read_bytes()
    stored = config.storage_root / f"{name}.{kind}"
    stored.write_bytes(bz2.compress(data) if kind == "bz2" else gzip.compress(data))
    result = ingest_file(session, config, stored.name)
    session.commit()
    diskfile = session.get(DiskFile, result.diskfile_id)
    assert diskfile.data_md5 == hashlib.md5(data).hexdigest()
    assert diskfile.data_size == len(data)
    report = session.get(DiskFileReport, diskfile.id)
    assert report.astropy_ok
    if fitsverify_program():
        # fitsverify read the uncompressed copy, but its report names the stored file
        assert report.fitsverify_ok and "0 error(s)" in report.fitsverify_report
        assert str(stored) in report.fitsverify_report
        assert STAGING not in report.fitsverify_report
    assert staged(config) == []


def test_staging_copy_removed_when_the_file_is_bad(session: Session, config: Config) -> None:
    name = observatory_filename(frame=32)
    plain = write_truncated(config.storage_root / "work" / name)
    stored = config.storage_root / f"{name}.bz2"
    stored.write_bytes(bz2.compress(plain.read_bytes()))
    with pytest.raises(IngestError, match=f"{stored.name}: truncated: "):
        ingest_file(session, config, stored.name)
    session.rollback()
    assert staged(config) == []


def test_staging_not_writable_is_transient(session: Session, config: Config) -> None:
    name = observatory_filename(frame=33)
    make_observatory_file(config.storage_root, name + ".bz2")
    decompress_staging_dir(config).write_text("not a folder")
    with pytest.raises(TransientError, match="cannot make a decompressed copy"):
        ingest_file(session, config, name + ".bz2")
    session.rollback()


def test_digest_sink_gets_every_decompressed_byte(tmp_path: Path) -> None:
    first, second = b"A" * 3_000_000, bytes(range(256)) * 5000
    source = tmp_path / "two-streams.bz2"
    source.write_bytes(bz2.compress(first) + bz2.compress(second))
    sink = io.BytesIO()
    digest = digest_file(source, "bz2", sink)
    assert sink.getvalue() == first + second
    assert digest.data_md5 == hashlib.md5(first + second).hexdigest()


def _slow_program(tmp_path: Path, seconds: int) -> str:
    program = tmp_path / "slow-fitsverify"
    program.write_text(f"#!/bin/sh\necho started\nexec sleep {seconds}\n")
    program.chmod(0o755)
    return str(program)


def test_fitsverify_left_early_is_killed(tmp_path: Path) -> None:
    run = start_fitsverify(tmp_path / "x.fits", _slow_program(tmp_path, 60))
    assert run is not None
    began = time.monotonic()
    with run:
        pass
    assert time.monotonic() - began < 10
    assert run._process is not None and run._process.returncode is not None


def test_fitsverify_timeout_and_missing_program(tmp_path: Path) -> None:
    run = start_fitsverify(tmp_path / "x.fits", _slow_program(tmp_path, 60))
    assert run is not None
    with run:
        report = run.result(timeout=0.5)
    assert not report.ok and report.text.startswith("fitsverify could not run: ")
    missing = start_fitsverify(tmp_path / "x.fits", str(tmp_path / "no-such-program"))
    assert missing is not None
    with missing:
        report = missing.result()
    assert not report.ok and report.text.startswith("fitsverify could not run: ")
