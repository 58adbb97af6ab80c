"""Ingest of one file, on SQLite and PostgreSQL, with real and generated FITS files."""

from __future__ import annotations

import argparse
import bz2
import hashlib
import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.db.engine import make_session_factory
from fits_storage.ingest import (
    FileMissingError,
    IngestAction,
    IngestError,
    IngestResult,
    ingest_file,
    ingest_work,
)
from fits_storage.ingest.verify import fitsverify_program
from fits_storage.orm import (
    CalCacheQueue,
    DiskFile,
    DiskFileReport,
    ExportQueue,
    File,
    FullTextHeader,
    Header,
    IngestQueue,
    PreviewQueue,
)
from fits_storage.queues import Status, Worker, get_queue
from fits_storage.service.daemon import Daemon
from fits_storage.service.worker import QueueLoop
from tests.conftest import make_test_config
from tests.fitsdata import (
    ASTROPY_INVALID,
    GMOS_HEADER,
    GMOS_ORIGNAME,
    astropy_fits_names,
    copy_astropy_files,
    copy_gmos_file,
    header_value_matches,
    make_observatory_file,
    observatory_filename,
    write_corrupt_bz2,
    write_empty,
    write_garbage_tail,
    write_not_fits,
    write_raw_card_values,
    write_truncated,
    write_unpadded,
)

ROW_TABLES = (File, DiskFile, Header, FullTextHeader, DiskFileReport)


def ingest(session: Session, config: Config, filename: str, path: str = "", **kw) -> IngestResult:
    result = ingest_file(session, config, filename, path, **kw)
    session.commit()
    return result


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model))


def versions(session: Session, name: str) -> list[DiskFile]:
    return list(
        session.scalars(select(DiskFile).join(File).where(File.name == name).order_by(DiskFile.id))
    )


def test_real_gmos_file(session: Session, config: Config) -> None:
    stored = copy_gmos_file(config.storage_root)
    result = ingest(session, config, GMOS_ORIGNAME)
    assert result.action is IngestAction.NEW
    diskfile = session.get(DiskFile, result.diskfile_id)
    assert diskfile is not None
    data = stored.read_bytes()
    assert diskfile.file.name == GMOS_ORIGNAME
    assert (diskfile.filename, diskfile.path) == (GMOS_ORIGNAME, "")
    assert diskfile.present and diskfile.canonical and not diskfile.compressed
    assert diskfile.file_size == diskfile.data_size == len(data) == 388800
    assert diskfile.file_md5 == diskfile.data_md5 == hashlib.md5(data).hexdigest()
    assert diskfile.mtime_ns == stored.stat().st_mtime_ns
    header = diskfile.header
    assert header is not None
    for column, expected in GMOS_HEADER.items():
        assert getattr(header, column) == header_value_matches(expected), column
    assert header.detector_binning is None and header.notes == "CCDSUM: missing (extension 1)"
    fulltext = session.scalar(
        select(FullTextHeader.fulltext).where(FullTextHeader.diskfile_id == diskfile.id)
    )
    assert "DATALAB = 'GS-2019B-Q-305-7-004'" in fulltext
    assert "--- HDU 3: SKYFIT" in fulltext and "EXTNAME = 'VAR     '" in fulltext
    report = session.scalar(select(DiskFileReport).where(DiskFileReport.diskfile_id == diskfile.id))
    assert report.astropy_ok and report.astropy_report == ""
    if fitsverify_program():
        assert report.fitsverify_ok and "0 error(s)" in report.fitsverify_report
    else:
        assert report.fitsverify_ok is None and report.fitsverify_report is None


def test_without_fitsverify_on_path(
    session: Session, config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sites without fitsverify still ingest; the report says it was not run (NULL)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert fitsverify_program() is None
    make_observatory_file(config.storage_root, "N20251123S0002.fits")
    result = ingest(session, config, "N20251123S0002.fits")
    report = session.scalar(
        select(DiskFileReport).where(DiskFileReport.diskfile_id == result.diskfile_id)
    )
    assert report.astropy_ok and report.fitsverify_ok is None and report.fitsverify_report is None


def test_every_astropy_file_including_invalid_ones(session: Session, config: Config) -> None:
    folder = config.storage_root / "astropy"
    names = astropy_fits_names()
    assert len(names) >= 30
    copy_astropy_files(folder, names)
    for name in names:
        result = ingest(session, config, Path(name).name, "astropy")
        assert result.action is IngestAction.NEW, name
    for model in ROW_TABLES:
        assert count(session, model) == len(names), model
    reports = {
        df.filename: report
        for df, report in session.execute(select(DiskFile, DiskFileReport).join(DiskFileReport))
    }
    assert not reports["verify.fits"].astropy_ok
    assert "'BITPIX' card at the wrong place" in reports["verify.fits"].astropy_report
    assert not reports["checksum_false.fits"].astropy_ok
    assert "CHECKSUM does not match" in reports["checksum_false.fits"].astropy_report
    assert reports["test0.fits"].astropy_ok
    if fitsverify_program():
        assert reports["verify.fits"].fitsverify_ok is False
        assert reports["test0.fits"].fitsverify_ok is True
    valid = [Path(n).name for n in names if n not in ASTROPY_INVALID]
    assert all(reports[n].astropy_report is not None for n in valid)
    hst = session.scalar(
        select(Header).join(DiskFile).where(DiskFile.filename == "o4sp040b0_raw.fits")
    )
    assert hst.instrument == "STIS" and hst.telescope == "HST"
    assert hst.filter_name == "open"  # FILTER = 'Clear'
    assert hst.program_id is None and hst.engineering is None
    assert "EXPTIME: missing" in hst.notes.splitlines()


def test_generated_bz2_file(session: Session, config: Config) -> None:
    name = observatory_filename("S", "20251124", 17)
    stored = make_observatory_file(config.storage_root / "2025", name + ".bz2", binning=(1, 2))
    result = ingest(session, config, stored.name, "2025")
    diskfile = session.get(DiskFile, result.diskfile_id)
    assert diskfile.file.name == name  # .bz2 trimmed
    data = bz2.decompress(stored.read_bytes())
    assert diskfile.compressed
    assert diskfile.file_size == stored.stat().st_size
    assert diskfile.file_md5 == hashlib.md5(stored.read_bytes()).hexdigest()
    assert diskfile.data_size == len(data)
    assert diskfile.data_md5 == hashlib.md5(data).hexdigest()
    assert diskfile.header.detector_binning == "1x2"
    assert diskfile.header.data_label == "GS-2025B-Q-101-18-017"
    assert diskfile.header.notes is None


def test_change_detection(session: Session, config: Config) -> None:
    name = observatory_filename(frame=5)
    path = make_observatory_file(config.storage_root, name, seed=1)
    first = ingest(session, config, name)
    assert first.action is IngestAction.NEW

    assert ingest(session, config, name).action is IngestAction.UNCHANGED

    # Touched, same bytes: the md5 decides, and the new mtime is recorded.
    later = path.stat().st_mtime_ns + 7_000_000_123
    os.utime(path, ns=(later, later))
    touched = ingest(session, config, name)
    assert touched.action is IngestAction.MD5_UNCHANGED
    assert touched.diskfile_id == first.diskfile_id
    session.expire_all()
    assert session.get(DiskFile, first.diskfile_id).mtime_ns == later
    assert ingest(session, config, name).action is IngestAction.UNCHANGED

    # force_md5: same size and mtime, still hashed; unchanged bytes stay one version.
    assert ingest(session, config, name, force_md5=True).action is IngestAction.MD5_UNCHANGED

    # Rewritten: a new version; the old one is no longer present or canonical.
    make_observatory_file(config.storage_root, name, seed=2)
    rewritten = ingest(session, config, name)
    assert rewritten.action is IngestAction.NEW_VERSION
    assert rewritten.file_id == first.file_id and rewritten.diskfile_id != first.diskfile_id

    # Rewritten behind our back with size and mtime restored: only force_md5 notices.
    st = path.stat()
    make_observatory_file(config.storage_root, name, seed=3)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    assert ingest(session, config, name).action is IngestAction.UNCHANGED
    assert ingest(session, config, name, force_md5=True).action is IngestAction.NEW_VERSION

    # force: a new version whatever.
    assert ingest(session, config, name, force=True).action is IngestAction.NEW_VERSION

    session.expire_all()
    all_versions = versions(session, name)
    assert len(all_versions) == 4
    assert [(v.present, v.canonical) for v in all_versions] == [(False, False)] * 3 + [(True, True)]
    assert len({v.file_md5 for v in all_versions}) == 3
    assert count(session, File) == 1 and count(session, Header) == 4


def test_same_name_in_another_folder_or_compressed_is_a_new_version(
    session: Session, config: Config
) -> None:
    name = observatory_filename(frame=9)
    make_observatory_file(config.storage_root / "a", name)
    make_observatory_file(config.storage_root / "b", name)
    make_observatory_file(config.storage_root / "b", name + ".bz2")
    assert ingest(session, config, name, "a").action is IngestAction.NEW
    assert ingest(session, config, name, "b").action is IngestAction.NEW_VERSION
    assert ingest(session, config, name + ".bz2", "b").action is IngestAction.NEW_VERSION
    present = [v for v in versions(session, name) if v.present]
    assert [(v.path, v.filename, v.canonical) for v in present] == [("b", name + ".bz2", True)]


def test_fan_out_per_configuration(session: Session, tmp_path: Path, db_url: str) -> None:
    config = make_test_config(
        tmp_path,
        db_url,
        export_destinations="['https://archive.example.org', 'https://mirror.example.org']",
        using_previews="true",
        using_calcache="true",
    )
    name = observatory_filename(frame=11)
    make_observatory_file(config.storage_root / "raw", name)
    result = ingest(session, config, name, "raw")
    assert result.queued == (
        "export to https://archive.example.org",
        "export to https://mirror.example.org",
        "preview",
        "calcache",
    )
    exports = session.execute(
        select(ExportQueue.filename, ExportQueue.path, ExportQueue.destination, ExportQueue.status)
    ).all()
    assert sorted(exports) == [
        (name, "raw", "https://archive.example.org", "waiting"),
        (name, "raw", "https://mirror.example.org", "waiting"),
    ]
    for model in (PreviewQueue, CalCacheQueue):
        assert session.execute(select(model.filename, model.path)).all() == [(name, "raw")]
    # Nothing changed: nothing more to do downstream.
    assert ingest(session, config, name, "raw").action is IngestAction.UNCHANGED
    assert count(session, ExportQueue) == 2


def test_no_fan_out_by_default(session: Session, config: Config) -> None:
    make_observatory_file(config.storage_root, "N20251123S0001.fits")
    assert ingest(session, config, "N20251123S0001.fits").queued == ()
    for model in (ExportQueue, PreviewQueue, CalCacheQueue):
        assert count(session, model) == 0


BROKEN = {
    "truncated": (write_truncated, "truncated: "),
    "unpadded": (write_unpadded, "wrong padding: "),
    "garbage": (write_garbage_tail, "corrupt or truncated: Error validating header for HDU #4"),
    "not_fits": (write_not_fits, "not a readable FITS file: no SIMPLE card"),
    "empty": (write_empty, "empty file (0 bytes)"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_files_fail_clearly_and_write_nothing(
    session: Session, config: Config, kind: str
) -> None:
    writer, reason = BROKEN[kind]
    name = f"N20251123S{len(kind):04d}.fits"
    writer(config.storage_root / name)
    with pytest.raises(IngestError) as caught:
        ingest_file(session, config, name)
    session.rollback()
    message = str(caught.value)
    assert message.startswith(f"{name}: {reason}"), message
    assert "\n" not in message
    for model in ROW_TABLES:
        assert count(session, model) == 0, model


@pytest.mark.parametrize(
    ("filename", "path", "prepare", "reason"),
    [
        ("N20251123S0100.fits", "", None, "file not found at "),
        ("N20251123S0101.fits", "", "dir", "is not a regular file"),
        ("N20251123S0105.fits", "", "fifo", "is not a regular file"),
        ("N20251123S0106.fits", "", "device", "is not a regular file"),
        ("N20251123S0102.fits.bz2", "", "bz2", "bz2 stream ends early"),
        ("N20251123S0103.fits.bz2", "", "notbz2", "corrupt bz2 data"),
        ("N20251123S0104.fits", "../outside", None, "refused name: '..' starts with"),
    ],
)
def test_missing_or_unreadable_input(
    session: Session,
    config: Config,
    filename: str,
    path: str,
    prepare: str | None,
    reason: str,
) -> None:
    target = config.storage_root / filename
    if prepare == "dir":
        target.mkdir()
    elif prepare == "fifo":  # opening it would wait for a writer for ever
        os.mkfifo(target)
    elif prepare == "device":
        target.symlink_to("/dev/zero")  # reading it would never end
    elif prepare == "bz2":
        write_corrupt_bz2(target)
    elif prepare == "notbz2":
        write_not_fits(target)
    with pytest.raises(IngestError, match=reason):
        ingest_file(session, config, filename, path)
    session.rollback()
    assert count(session, File) == 0 and count(session, DiskFile) == 0


def test_broken_rewrite_keeps_the_previous_version_present(
    session: Session, config: Config
) -> None:
    name = observatory_filename(frame=21)
    path = make_observatory_file(config.storage_root, name)
    first = ingest(session, config, name)
    write_truncated(path, source=path)
    with pytest.raises(IngestError, match="truncated"):
        ingest_file(session, config, name)
    session.rollback()
    [only] = versions(session, name)
    assert only.id == first.diskfile_id and only.present and only.canonical
    assert count(session, Header) == 1


def test_vanished_file_marks_its_present_version_not_present(
    session: Session, config: Config
) -> None:
    name = observatory_filename(frame=22)
    path = make_observatory_file(config.storage_root, name)
    first = ingest(session, config, name)
    path.unlink()
    # another name of the same file (compressed) missing: not the present version's place
    with pytest.raises(FileMissingError) as other:
        ingest_file(session, config, name + ".bz2")
    session.rollback()
    assert "marked not present" not in str(other.value)
    assert versions(session, name)[0].present

    with pytest.raises(FileMissingError) as caught:
        ingest_file(session, config, name)
    session.rollback()
    assert str(caught.value) == (
        f"{name}: file not found at {path}; its present version "
        f"(diskfile {first.diskfile_id}) is now marked not present"
    )
    session.expire_all()
    [only] = versions(session, name)
    assert only.id == first.diskfile_id and not only.present and only.canonical

    with pytest.raises(FileMissingError) as again:  # nothing present any more: nothing to say
        ingest_file(session, config, name)
    session.rollback()
    assert str(again.value) == f"{name}: file not found at {path}"
    make_observatory_file(config.storage_root, name)  # back: a present version again
    back = ingest(session, config, name)
    old, new = versions(session, name)
    assert new.id == back.diskfile_id and new.present and new.canonical
    assert not (old.present or old.canonical)


def test_nul_byte_in_a_header_string_is_ingested_with_a_note(
    session: Session, config: Config
) -> None:
    """PostgreSQL refuses NUL in text and astropy refuses it in a card: the file is still
    ingested, the NUL removed from the value, with a note and a verification complaint."""
    name = observatory_filename(frame=41)
    path = make_observatory_file(config.storage_root, name)
    write_raw_card_values(path, {"OBJECT": b"'NGC\x001068'", "OBSCLASS": b"'science\x00\x00'"})
    result = ingest(session, config, name)
    assert result.action is IngestAction.NEW and result.header_notes == 2
    header = session.scalar(select(Header))
    assert (header.object, header.observation_class) == ("NGC1068", "science")
    assert "OBJECT: NUL byte removed from the card" in header.notes
    assert "OBSCLASS: NUL byte removed from the card" in header.notes
    report = session.scalar(select(DiskFileReport))
    assert not report.astropy_ok and "'OBJECT' is not FITS standard" in report.astropy_report
    fulltext = session.scalar(select(FullTextHeader.fulltext))
    assert "OBJECT  = 'NGC1068'" in fulltext and "\x00" not in fulltext


def test_nan_and_inf_card_values_show_in_the_verification_report(
    session: Session, config: Config
) -> None:
    name = observatory_filename(frame=42)
    path = make_observatory_file(config.storage_root, name)
    write_raw_card_values(path, {"EXPTIME": b"NaN".rjust(20), "AIRMASS": b"-Inf".rjust(20)})
    result = ingest(session, config, name)
    assert result.action is IngestAction.NEW and result.verified_ok is False
    report = session.scalar(select(DiskFileReport))
    assert not report.astropy_ok
    assert "'EXPTIME' is not FITS standard (invalid value string: 'NaN')" in report.astropy_report
    assert "'AIRMASS' is not FITS standard (invalid value string: '-Inf')" in report.astropy_report
    header = session.scalar(select(Header))
    assert header.exposure_time is None and header.airmass is None
    assert "EXPTIME: not a valid FITS value ('NaN')" in header.notes
    assert "AIRMASS: not a valid FITS value ('-Inf')" in header.notes


def _daemon(config: Config, session: Session) -> Daemon:
    engine = session.get_bind()
    return Daemon(
        command="test_ingest",
        name="t",
        args=argparse.Namespace(empty=True, oneshot=False),
        config=config,
        logger=logging.getLogger("test_ingest"),
        engine=engine,  # type: ignore[arg-type]
        session_factory=make_session_factory(engine),  # type: ignore[arg-type]
    )


def test_ingest_work_through_the_queue_loop(
    session: Session, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """The work function as the daemon runner calls it: success completes, bad input fails."""
    good = observatory_filename(frame=31)
    bad = observatory_filename(frame=32)
    make_observatory_file(config.storage_root / "q", good)
    write_truncated(config.storage_root / "q" / bad)
    queue = get_queue("ingest", config)
    queue.add(session, good, "q")
    queue.add(session, bad, "q", force=True)
    session.commit()

    loop = QueueLoop(_daemon(config, session), queue, ingest_work)
    with caplog.at_level(logging.INFO, logger="test_ingest"):
        for _ in range(2):
            with loop.daemon.session_factory() as claim_session:
                entry = queue.claim(claim_session, Worker("test"))
                claim_session.commit()
            assert entry is not None
            loop.worker = Worker("test")
            loop.process(entry)
    assert f"q/{good}: ingested new file (diskfile " in caplog.text
    session.expire_all()
    remaining = session.execute(select(IngestQueue.filename, IngestQueue.status)).all()
    assert remaining == [(bad, Status.FAILED.value)]
    failed = session.scalar(select(IngestQueue))
    assert failed.error.startswith(f"IngestError: q/{bad}: truncated: ")
    assert "Traceback" in failed.traceback
    assert count(session, DiskFile) == 1

    queue.add(session, good, "q")
    session.commit()
    with loop.daemon.session_factory() as claim_session:
        entry = queue.claim(claim_session, Worker("test"))
        claim_session.commit()
    with caplog.at_level(logging.INFO, logger="test_ingest"):
        loop.process(entry)
    assert f"q/{good}: unchanged" in caplog.text
