"""copy_from_dhs: completeness checks, verified copies, and the pass-by-pass decisions."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.dhs import (
    CopyError,
    DhsPoller,
    NotCompleteFits,
    check_complete_fits,
    copy_verified,
    remove_stale_temporaries,
)
from fits_storage.dhs.copy import observe
from fits_storage.orm.file import DiskFile, File
from fits_storage.orm.queues import IngestQueue
from fits_storage.storage.base import NotRegularFile
from tests import fitsdata
from tests.conftest import config_environ, make_test_config

ROOT = Path(__file__).resolve().parent.parent


# -- is it a complete FITS file? ----------------------------------------------------------------


@pytest.mark.parametrize("name", fitsdata.astropy_fits_names())
def test_real_astropy_files_are_complete(tmp_path: Path, name: str) -> None:
    check_complete_fits(fitsdata.copy_astropy_file(name, tmp_path, Path(name).name))


def test_real_gmos_and_generated_files_are_complete(tmp_path: Path) -> None:
    check_complete_fits(fitsdata.copy_gmos_file(tmp_path))
    generated = fitsdata.make_observatory_file(tmp_path, "N20251123S0042.fits")
    check_complete_fits(generated)
    check_complete_fits(fitsdata.bzip2_file(generated))


@pytest.mark.parametrize(
    ("writer", "reason"),
    [
        (lambda d: fitsdata.write_truncated(d / "N20251123S0001.fits"), "not a multiple of 2880"),
        (lambda d: fitsdata.write_unpadded(d / "N20251123S0002.fits"), "not a multiple of 2880"),
        (lambda d: fitsdata.write_garbage_tail(d / "N20251123S0003.fits"), "2880|extra bytes"),
        (lambda d: fitsdata.write_not_fits(d / "N20251123S0004.fits"), "2880|open as FITS"),
        (lambda d: fitsdata.write_empty(d / "N20251123S0005.fits"), "empty file"),
        (lambda d: fitsdata.write_corrupt_bz2(d / "N20251123S0006.fits.bz2"), "open as FITS"),
        (lambda d: truncated_at_block(d / "N20251123S0007.fits"), "truncated"),
    ],
)
def test_broken_files_are_not_complete(tmp_path: Path, writer, reason: str) -> None:
    path = writer(tmp_path)
    with pytest.raises(NotCompleteFits, match=reason):
        check_complete_fits(path)


def truncated_at_block(dest: Path) -> Path:
    """Cut at a 2880-byte boundary inside the data: the size alone cannot tell."""
    data = fitsdata.make_observatory_file(dest.parent, ".whole.fits").read_bytes()
    dest.write_bytes(data[: len(data) - 2880])
    return dest


# -- copying ------------------------------------------------------------------------------------


def test_copy_is_verified_atomic_and_keeps_mtime(tmp_path: Path) -> None:
    source = fitsdata.copy_gmos_file(tmp_path / "dhs", "S20190808S0048.fits")
    os.utime(source, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    before = source.read_bytes(), observe(source)
    dest = tmp_path / "dataflow" / source.name
    dest.parent.mkdir()
    copied = copy_verified(source, dest, expected=observe(source))
    assert dest.read_bytes() == source.read_bytes()
    assert copied.md5 == hashlib.md5(source.read_bytes()).hexdigest()
    assert observe(dest).mtime_ns == observe(source).mtime_ns == 1_700_000_000_123_456_789
    assert (source.read_bytes(), observe(source)) == before  # the DHS file is untouched
    assert os.listdir(dest.parent) == [dest.name]  # no temporary left


def test_copy_refuses_a_file_that_changed_since_it_was_checked(tmp_path: Path) -> None:
    source = fitsdata.make_observatory_file(tmp_path / "dhs", "N20251123S0001.fits")
    seen = observe(source)
    with open(source, "ab") as handle:
        handle.write(b"\0" * 2880)
    dest = tmp_path / "N20251123S0001.fits"
    with pytest.raises(CopyError, match="changed"):
        copy_verified(source, dest, expected=seen)
    assert not dest.exists()
    assert os.listdir(tmp_path) == ["dhs"]


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    old = tmp_path / ".N20251123S0001.fits.abc123.part"
    fresh = tmp_path / ".N20251123S0002.fits.def456.part"
    other = tmp_path / ".snapshot.part"
    for path in (old, fresh, other):
        path.write_bytes(b"x")
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(other, (1_000_000, 1_000_000))
    assert remove_stale_temporaries(tmp_path) == [old.name]
    assert sorted(os.listdir(tmp_path)) == sorted([fresh.name, other.name])


def test_copy_never_follows_a_symlink_or_reads_a_non_regular_file(tmp_path: Path) -> None:
    """The checks are made on the opened descriptor: a name swapped for a link after the scan
    is refused by every open (completeness check, md5, copy), and nothing is written."""
    outside = fitsdata.make_observatory_file(tmp_path / "outside", "N20251123S0001.fits")
    dhs = tmp_path / "dhs"
    dhs.mkdir()
    (dhs / "N20251123S0001.fits").symlink_to(outside)
    (dhs / "N20251123S0002.fits").mkdir()
    dest_dir = tmp_path / "dataflow"
    dest_dir.mkdir()
    for name in ("N20251123S0001.fits", "N20251123S0002.fits"):
        with pytest.raises(NotRegularFile):
            check_complete_fits(dhs / name)
        with pytest.raises(NotRegularFile):
            copy_verified(dhs / name, dest_dir / name, expected=observe(outside))
    assert os.listdir(dest_dir) == []


def test_symlinks_and_non_regular_files_are_skipped_with_one_warning_each(
    dhs_config: Config, session_factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dhs, root = dhs_config.dhs_perm, dhs_config.storage_root
    outside = fitsdata.make_observatory_file(tmp_path / "outside", "N20251123S0009.fits")
    (dhs / "N20251123S0001.fits").symlink_to(outside)
    (dhs / "N20251123S0002.fits").symlink_to("/etc/passwd")
    os.mkfifo(dhs / "N20251123S0003.fits")
    (dhs / "N20251123S0004.fits").mkdir()
    (dhs / "N20251123S0005.fits.bz2").symlink_to(fitsdata.bzip2_file(outside))
    good = fitsdata.make_observatory_file(dhs, "N20251123S0006.fits")
    poller = make_poller(dhs_config, session_factory)
    for _ in range(4):
        poller.run_pass()
    assert data_files(root) == [good.name]
    assert queued_names(session_factory) == [good.name]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(w.split(":")[0] for w in warnings) == [
        "Skipping N20251123S0001.fits",
        "Skipping N20251123S0002.fits",
        "Skipping N20251123S0003.fits",
        "Skipping N20251123S0004.fits",
        "Skipping N20251123S0005.fits.bz2",
    ]
    assert "N20251123S0001.fits: it is a symbolic link" in caplog.text
    assert "N20251123S0003.fits: it is a FIFO" in caplog.text
    assert "N20251123S0004.fits: it is a directory" in caplog.text
    # A link replaced by a regular file is taken; a name that becomes a link again is reported
    # again, once.
    (dhs / "N20251123S0001.fits").unlink()
    shutil.copy(outside, dhs / "N20251123S0001.fits")
    poller.run_pass()
    assert poller.run_pass().copied == ["N20251123S0001.fits"]
    assert (root / "N20251123S0001.fits").read_bytes() == outside.read_bytes()


# -- the poller, pass by pass -------------------------------------------------------------------


@pytest.fixture
def dhs_config(tmp_path: Path, db_url: str) -> Config:
    return make_test_config(tmp_path, db_url, min_dhs_age_seconds="0")


def make_poller(config: Config, factory: sessionmaker[Session], **kw) -> DhsPoller:
    return DhsPoller(config, factory, logging.getLogger("copy_from_dhs"), **kw)


def data_files(directory: Path) -> list[str]:
    """Files in storage_root other than the test's SQLite database (temporaries included)."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith("fits_storage.db")
    )


def queued_names(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return sorted(session.scalars(select(IngestQueue.filename)).all())


def record_ingest(factory: sessionmaker[Session], path: Path) -> None:
    """What an ingest leaves behind for the catch-up: a present diskfile of the stored bytes."""
    st = path.stat()
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    with factory() as session:
        file = File(name=path.name)
        session.add(file)
        session.flush()
        session.add(
            DiskFile(file_id=file.id, filename=path.name, path="", present=True, canonical=True,
                     file_size=st.st_size, file_md5=md5, lastmod=datetime.now(),
                     mtime_ns=st.st_mtime_ns, compressed=False, data_size=st.st_size,
                     data_md5=md5)
        )  # fmt: skip
        session.commit()


def test_new_files_are_copied_on_the_second_look(
    dhs_config: Config, session_factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dhs = dhs_config.dhs_perm
    good = fitsdata.make_observatory_file(dhs, "N20251123S0001.fits")
    gmos = fitsdata.copy_gmos_file(dhs, "S20251123S0002.fits")
    (dhs / ".snapshot").mkdir()
    (dhs / ".vtoc_internal").write_bytes(b"x")
    (dhs / "N20251123S0003.fits.part").write_bytes(b"x")
    (dhs / "dhs.log").write_text("x")
    poller = make_poller(dhs_config, session_factory)

    first = poller.run_pass()
    assert (first.seen, first.pending, first.copied) == (2, 2, [])
    second = poller.run_pass()
    assert sorted(second.copied) == sorted([good.name, gmos.name])
    assert queued_names(session_factory) == sorted([good.name, gmos.name])
    for path in (good, gmos):
        assert (dhs_config.storage_root / path.name).read_bytes() == path.read_bytes()
    assert data_files(dhs_config.storage_root) == sorted([good.name, gmos.name])
    assert poller.run_pass().copied == []  # nothing new
    text = caplog.text
    assert f"Copying {good.name} to {dhs_config.storage_root}" in text
    assert f"Adding {good.name} to IngestQueue" in text
    assert "Ignoring directory: .snapshot" in text
    assert "Ignoring tmp file: .vtoc_internal" in text
    assert "Ignoring non-FITS name: dhs.log" in text


def test_a_growing_file_waits_until_it_is_stable_and_complete(
    dhs_config: Config, session_factory
) -> None:
    source = fitsdata.make_observatory_file(dhs_config.dhs_perm, ".whole.fits")
    whole = source.read_bytes()
    with fits.open(source) as hdulist:
        inside_an_hdu = hdulist.fileinfo(2)["datLoc"]  # the second extension's data to come
    target = dhs_config.dhs_perm / "N20251123S0010.fits"
    poller = make_poller(dhs_config, session_factory)
    for cut in (2880, 2880 * 3, inside_an_hdu):  # grows between every pass
        target.write_bytes(whole[:cut])
        assert poller.run_pass().copied == []
    # The DHS pauses mid-file (stable but incomplete): refused, not copied.
    assert poller.run_pass().copied == []
    assert not (dhs_config.storage_root / target.name).exists()
    target.write_bytes(whole)
    assert poller.run_pass().copied == []  # changed: look again
    assert poller.run_pass().copied == [target.name]
    assert (dhs_config.storage_root / target.name).read_bytes() == whole


def test_young_files_wait_for_min_dhs_age(tmp_path: Path, db_url: str, session_factory) -> None:
    config = make_test_config(tmp_path, db_url, min_dhs_age_seconds="3600")
    fitsdata.make_observatory_file(config.dhs_perm, "N20251123S0001.fits")
    poller = make_poller(config, session_factory)
    for _ in range(3):
        result = poller.run_pass()
        assert (result.copied, result.pending) == ([], 1)


def test_broken_files_are_reported_once(
    dhs_config: Config, session_factory, caplog: pytest.LogCaptureFixture
) -> None:
    dhs = dhs_config.dhs_perm
    fitsdata.write_not_fits(dhs / "N20251123S0001.fits")
    fitsdata.write_truncated(dhs / "N20251123S0002.fits")
    poller = make_poller(dhs_config, session_factory)
    for _ in range(5):
        poller.run_pass()
    errors = [r for r in caplog.records if r.levelno == logging.CRITICAL]  # mailed to admins
    assert len(errors) == 2
    assert any("N20251123S0002.fits: not a complete FITS file" in r.getMessage() for r in errors)
    assert data_files(dhs_config.storage_root) == []
    # Fixed on the DHS disk: taken on the second look after the change.
    fitsdata.make_observatory_file(dhs, "N20251123S0002.fits")
    poller.run_pass()
    assert poller.run_pass().copied == ["N20251123S0002.fits"]


def test_dryrun_writes_nothing(
    dhs_config: Config, session_factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fitsdata.make_observatory_file(dhs_config.dhs_perm, "N20251123S0001.fits")
    poller = make_poller(dhs_config, session_factory, dryrun=True)
    poller.run_pass()
    assert poller.run_pass().copied == ["N20251123S0001.fits"]
    assert data_files(dhs_config.storage_root) == []
    assert queued_names(session_factory) == []
    assert "Would copy N20251123S0001.fits" in caplog.text
    assert "Would add N20251123S0001.fits to IngestQueue" in caplog.text


def test_catch_up_compares_with_the_database_not_memory(
    dhs_config: Config, session_factory
) -> None:
    dhs, root = dhs_config.dhs_perm, dhs_config.storage_root
    ingested = fitsdata.make_observatory_file(dhs, "N20251123S0001.fits", seed=1)
    copied_only = fitsdata.make_observatory_file(dhs, "N20251123S0002.fits", seed=2)
    rewritten = fitsdata.make_observatory_file(dhs, "N20251123S0003.fits", seed=3)
    missing = fitsdata.make_observatory_file(dhs, "N20251123S0004.fits", seed=4)
    before = make_poller(dhs_config, session_factory)
    before.run_pass()
    assert len(before.run_pass().copied) == 4
    for path in (ingested, rewritten):
        record_ingest(session_factory, root / path.name)
    # Downtime: the queue is drained, staff fixed nothing, one file vanished from dataflow,
    # one was rewritten on the DHS disk (same size, new bytes).
    with session_factory() as session:
        session.query(IngestQueue).delete()
        session.commit()
    (root / missing.name).unlink()
    fitsdata.make_observatory_file(dhs, rewritten.name, seed=33)
    assert rewritten.stat().st_size == (root / rewritten.name).stat().st_size

    after = make_poller(dhs_config, session_factory)  # a restart: empty memory
    after.run_pass()
    result = after.run_pass()
    assert result.skipped == [ingested.name]
    assert sorted(result.copied) == sorted([rewritten.name, missing.name])
    assert sorted(result.queued) == sorted([copied_only.name, rewritten.name, missing.name])
    assert (root / rewritten.name).read_bytes() == rewritten.read_bytes()


def test_a_staff_fix_on_the_dataflow_copy_is_not_overwritten(
    dhs_config: Config, session_factory
) -> None:
    dhs, root = dhs_config.dhs_perm, dhs_config.storage_root
    original = fitsdata.make_observatory_file(dhs, "N20251123S0001.fits", seed=1)
    poller = make_poller(dhs_config, session_factory)
    poller.run_pass()
    poller.run_pass()
    record_ingest(session_factory, root / original.name)
    # Staff fix a header on the dataflow copy; its ingest makes a new present version.
    fitsdata.make_observatory_file(root, original.name, seed=1, header={"RAWGEMQA": "FAIL"})
    with session_factory() as session:
        session.execute(DiskFile.__table__.update().values(present=False, canonical=False))
        session.commit()
    record_ingest_version(session_factory, root / original.name)
    restarted = make_poller(dhs_config, session_factory)
    restarted.run_pass()
    assert restarted.run_pass().skipped == [original.name]
    assert b"FAIL" in (root / original.name).read_bytes()


def record_ingest_version(factory: sessionmaker[Session], path: Path) -> None:
    st = path.stat()
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    with factory() as session:
        file_id = session.scalar(select(File.id).where(File.name == path.name))
        session.add(
            DiskFile(file_id=file_id, filename=path.name, path="", present=True, canonical=True,
                     file_size=st.st_size, file_md5=md5, lastmod=datetime.now(),
                     mtime_ns=st.st_mtime_ns, compressed=False, data_size=st.st_size,
                     data_md5=md5)
        )  # fmt: skip
        session.commit()


# -- the command --------------------------------------------------------------------------------


def test_command_once_copies_and_queues(dhs_config: Config, session_factory) -> None:
    fitsdata.copy_gmos_file(dhs_config.dhs_perm, "S20251123S0001.fits")
    fitsdata.write_not_fits(dhs_config.dhs_perm / "S20251123S0002.fits")
    env = config_environ(dhs_config)
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "fits_storage.cli.copy_from_dhs", "--once", "--interval=0.2"]
    dry = subprocess.run([*command, "--dryrun"], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "Would copy S20251123S0001.fits" in dry.stderr
    assert data_files(dhs_config.storage_root) == []
    run = subprocess.run([*command, "--name=cfd1", "--lockfile"], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Copying S20251123S0001.fits to" in run.stderr
    assert "Adding S20251123S0001.fits to IngestQueue" in run.stderr
    assert "S20251123S0002.fits: not a complete FITS file" in run.stderr
    assert queued_names(session_factory) == ["S20251123S0001.fits"]
    log = (dhs_config.log_dir / "copy_from_dhs-cfd1.log").read_text()
    assert "Adding S20251123S0001.fits to IngestQueue" in log


def test_command_oneshot_and_empty_and_what_dryrun_says(
    dhs_config: Config, session_factory
) -> None:
    """Every daemon's --oneshot/--empty (--once kept as the older name); a dry run says what
    it would do; a copy is queued as complete, so ingest does not defer it as recently
    modified (its mtime is the DHS file's, seconds old here)."""
    fitsdata.copy_gmos_file(dhs_config.dhs_perm, "S20251123S0001.fits")
    env = config_environ(dhs_config)
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "fits_storage.cli.copy_from_dhs", "--interval=0.2"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *args], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip

    dry = run("--oneshot", "--dryrun")
    assert dry.returncode == 0, dry.stderr
    assert "1 would be copied, 1 would be queued" in dry.stderr
    assert data_files(dhs_config.storage_root) == []
    done = run("--empty")
    assert done.returncode == 0, done.stderr
    assert "Pass complete: 1 files on the DHS disk, 1 copied, 1 queued" in done.stderr
    with session_factory() as session:
        assert session.scalars(select(IngestQueue.complete)).all() == [True]

    env["FITS_STORAGE_DEFER_THRESHOLD"] = "3600"  # everything here is "recently modified"
    ingest = subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.service_ingest_queue", "--empty"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr
    with session_factory() as session:
        assert session.scalars(select(DiskFile.filename)).all() == ["S20251123S0001.fits"]


@pytest.mark.parametrize(
    ("mask", "file_mode", "expected"), [(0o002, "", 0o664), (0o022, "0660", 0o660)]
)
def test_command_copies_with_the_umask_or_file_mode(
    tmp_path: Path, db_url: str, mask: int, file_mode: str, expected: int
) -> None:
    """Under systemd's UMask=0002 the copies are group-writable; ``file_mode`` overrides."""
    dhs_config = make_test_config(tmp_path, db_url, min_dhs_age_seconds="0", file_mode=file_mode)
    source = fitsdata.copy_gmos_file(dhs_config.dhs_perm, "S20251123S0001.fits")
    os.chmod(source, 0o444)
    env = config_environ(dhs_config)
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.copy_from_dhs", "--once", "--interval=0.2"],
        env=env, capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(mask),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (dhs_config.storage_root / source.name).stat().st_mode & 0o777 == expected
