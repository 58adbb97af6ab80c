"""The summit's other files (docs/summit_files.md): observing logs and miscfiles ingested on
SQLite and PostgreSQL with the version rules of FITS files, queued by the cron line that names
them, exported as they are to a real archive (uvicorn on loopback) that ingests and serves
them, and a miscfile's changed metadata following it there."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.db.schema import create_tables
from fits_storage.export import ExportSettings
from fits_storage.export.exporter import Exporter
from fits_storage.ingest import IngestAction, IngestError, ingest_file
from fits_storage.ingest.summitfiles import obslog_date_and_program
from fits_storage.orm import DiskFile, IngestQueue, MiscFile, Obslog, UploadQueue
from fits_storage.preview.selection import PreviewSelection
from fits_storage.queues import TransientError
from fits_storage.scan import Selection
from fits_storage.storage import file_md5
from fits_storage.upload.store import store_upload
from tests.conftest import make_test_config, postgresql_schema
from tests.processes import environ_for
from tests.test_web import ServerThread

ROOT = Path(__file__).resolve().parent.parent
OBSLOG = "20251123_GN-2025B-Q-101_obslog.txt"
OBSLOG_TEXT = "UT 05:06 N20251123S0042 NGC 1068 r 120s IQ70 — seeing 0.6\"\n"
MISC = "miscfile_GN-2025B-Q-101_finding_charts.tar.gz"
META = {"filename": "finding_charts.tar.gz", "is_misc": "True", "release": "2026-05-23",
        "description": "Finding charts", "program": "GN-2025B-Q-101"}  # fmt: skip
SECRET = "summit-to-archive"


def write_obslog(config: Config, text: str = OBSLOG_TEXT, name: str = OBSLOG) -> Path:
    folder = config.storage_root / "obslogs"
    folder.mkdir(exist_ok=True)
    target = folder / name
    target.write_text(text, encoding="utf-8")
    return target


def write_miscfile(config: Config, data: bytes = b"\x1f\x8b tarball", **meta: str) -> Path:
    target = config.storage_root / MISC
    target.write_bytes(data)
    (config.storage_root / f"{MISC}.json").write_text(json.dumps({**META, **meta}))
    return target


def ingest(session: Session, config: Config, filename: str, path: str = "", **kw: bool):
    result = ingest_file(session, config, filename, path, **kw)
    session.commit()
    return result


# -- names ------------------------------------------------------------------------------------


def test_names_of_summit_files() -> None:
    assert obslog_date_and_program(OBSLOG) == (date(2025, 11, 23), "GN-2025B-Q-101")
    assert obslog_date_and_program("2006Apr03_obslog.txt") == (date(2006, 4, 3), None)
    assert obslog_date_and_program("notes_obslog.txt") == (None, None)
    selection = Selection()
    assert selection.reason_to_skip(OBSLOG) is None
    assert selection.reason_to_skip(MISC) is None
    assert selection.reason_to_skip(f"{MISC}.json") == "miscfile metadata (read with its miscfile)"
    assert selection.reason_to_skip("obslog.txt") == "non-FITS name"
    assert selection.reason_to_skip(f".{OBSLOG}") == "tmp file"


# -- ingest -----------------------------------------------------------------------------------


def test_obslog_ingest_and_versions(config: Config, session: Session) -> None:
    source = write_obslog(config)
    first = ingest(session, config, OBSLOG, "obslogs")
    assert first.action is IngestAction.NEW
    log = session.scalars(select(Obslog)).one()
    assert (log.diskfile_id, log.date, log.program_id) == (
        first.diskfile_id, date(2025, 11, 23), "GN-2025B-Q-101",
    )  # fmt: skip
    assert log.text == OBSLOG_TEXT
    assert ingest(session, config, OBSLOG, "obslogs").action is IngestAction.UNCHANGED

    source.write_text(OBSLOG_TEXT + "UT 05:10 N20251123S0043 flat\n", encoding="utf-8")
    second = ingest(session, config, OBSLOG, "obslogs")
    assert second.action is IngestAction.NEW_VERSION
    versions = session.execute(
        select(DiskFile.id, DiskFile.present, DiskFile.canonical).order_by(DiskFile.id)
    ).all()
    assert versions == [(first.diskfile_id, False, False), (second.diskfile_id, True, True)]
    newest = session.scalars(select(Obslog).where(Obslog.diskfile_id == second.diskfile_id)).one()
    assert newest.text.endswith("flat\n")
    df = session.get(DiskFile, second.diskfile_id)
    assert (df.file_md5, df.compressed) == (file_md5(source).md5, False)
    # no preview is ever asked for a log (only FITS versions have a header row)
    assert list(PreviewSelection(force=True).files(session)) == []


def test_miscfile_ingest_metadata_and_its_errors(config: Config, session: Session) -> None:
    source = write_miscfile(config)
    first = ingest(session, config, MISC)
    assert first.action is IngestAction.NEW
    misc = session.scalars(select(MiscFile)).one()
    assert (misc.release, misc.description, misc.program_id, misc.original_name) == (
        datetime(2026, 5, 23), "Finding charts", "GN-2025B-Q-101", "finding_charts.tar.gz",
    )  # fmt: skip
    df = session.get(DiskFile, first.diskfile_id)
    # a .tar.gz miscfile is opaque bytes, never decompressed
    assert (df.compressed, df.data_md5) == (False, file_md5(source).md5)

    # new metadata, same bytes: the row changes, no new version
    (config.storage_root / f"{MISC}.json").write_text(
        json.dumps({**META, "description": "Finding charts, v2"})
    )
    again = ingest(session, config, MISC)
    assert again.action is IngestAction.META_UPDATED
    session.expire_all()
    assert session.scalars(select(MiscFile.description)).one() == "Finding charts, v2"
    assert ingest(session, config, MISC).action is IngestAction.UNCHANGED
    # the metadata queued on its own ingests its miscfile
    assert ingest(session, config, f"{MISC}.json").action is IngestAction.UNCHANGED

    (config.storage_root / f"{MISC}.json").write_text('{"release": "next spring"}')
    with pytest.raises(IngestError, match="'release' is not a date"):
        ingest(session, config, MISC, force=True)
    session.rollback()
    (config.storage_root / f"{MISC}.json").unlink()
    with pytest.raises(TransientError, match=f"its metadata {MISC}.json is not there"):
        ingest(session, config, MISC, force=True)
    session.rollback()
    other = "miscfile_alone.pdf.json"
    (config.storage_root / other).write_text(json.dumps(META))
    assert ingest(session, config, other).action is IngestAction.META_ONLY


# -- the cron line ----------------------------------------------------------------------------


def cron_command(name: str) -> list[str]:
    """The arguments of the crontab line running ``name`` with --path=obslogs."""
    for line in (ROOT / "cron" / "summit.crontab").read_text().splitlines():
        words = shlex.split(line.split("#")[0])
        if name in words and "--path=obslogs" in words:
            return words[words.index(name) + 1 :]
    raise AssertionError(f"no {name} --path=obslogs line in cron/summit.crontab")


def test_the_cron_line_for_obslogs_queues_them(config: Config, session: Session) -> None:
    write_obslog(config)
    write_obslog(config, "second night\n", "20251124_GN-2025B-Q-101_obslog.txt")
    (config.storage_root / "obslogs" / "README").write_text("not a log")
    args = cron_command("add_to_ingest_queue")
    result = subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.add_to_ingest_queue", *args],
        env=environ_for(config), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # --demon
    entries = session.execute(select(IngestQueue.path, IngestQueue.filename)).all()
    assert sorted(entries) == [
        ("obslogs", OBSLOG), ("obslogs", "20251124_GN-2025B-Q-101_obslog.txt"),
    ]  # fmt: skip
    for path, filename in entries:
        ingest(session, config, filename, path)
    assert len(session.scalars(select(Obslog)).all()) == 2


# -- export to a real archive, and what it serves ------------------------------------------------


@pytest.fixture
def archive_db_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second database on the same backend, for the archive."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'archive.db'}"
        engine = make_engine(url)
        create_tables(engine)
        engine.dispose()
        yield url
        return
    with postgresql_schema() as url:
        yield url


def process_archive_queues(config: Config) -> None:
    """What ingest_uploaded_file and service_ingest_queue do with the uploads, in turn."""
    engine = make_engine(config.database_url)
    try:
        factory = make_session_factory(engine)
        with factory() as session:
            uploads = session.execute(select(UploadQueue.filename, UploadQueue.path)).all()
            for filename, path in uploads:
                store_upload(session, config, filename, path)
                session.commit()
            session.query(UploadQueue).delete()
            queued = session.execute(select(IngestQueue.filename, IngestQueue.path)).all()
            session.query(IngestQueue).delete()
            session.commit()
            for filename, path in queued:
                ingest(session, config, filename, path)
    finally:
        engine.dispose()


def test_summit_files_are_exported_ingested_and_served(
    tmp_path: Path, db_url: str, archive_db_url: str, session: Session
) -> None:
    archive = make_test_config(
        tmp_path / "archive", archive_db_url, upload_auth_cookie=SECRET, is_archive="true"
    )
    with ServerThread(archive) as server:
        summit = make_test_config(
            tmp_path / "summit", db_url, export_destinations=server.url,
            export_auth_cookie=SECRET,
        )  # fmt: skip
        log_source = write_obslog(summit)
        misc_source = write_miscfile(summit)
        exporter = Exporter(summit, ExportSettings(spool_dir=tmp_path / "spool"))
        try:
            for filename, path in ((OBSLOG, "obslogs"), (MISC, "")):
                assert ingest(session, summit, filename, path).queued == (
                    f"export to {server.url}",
                )
                outcome = exporter.export(session, filename, path, server.url)
                assert (outcome.action, outcome.remote_name) == ("sent", filename)  # as it is
            process_archive_queues(archive)

            logs = requests.get(f"{server.url}/obslogs/20251123", timeout=30).json()
            assert [(x["filename"], x["path"], x["program_id"], x["date"], x["file_md5"])
                    for x in logs] == [(OBSLOG, "obslogs", "GN-2025B-Q-101", "2025-11-23",
                                        file_md5(log_source).md5)]  # fmt: skip
            by_program = requests.get(f"{server.url}/obslogs/progid=GN-2025B-Q-101", timeout=30)
            assert by_program.json() == logs
            assert requests.get(f"{server.url}/obslogs/20251120-20251122", timeout=30).json() == []
            served = requests.get(f"{server.url}/file/{OBSLOG}", timeout=30)
            assert served.status_code == 200
            assert served.headers["content-type"].startswith("text/plain")
            assert served.content == log_source.read_bytes()
            assert (archive.storage_root / "obslogs" / OBSLOG).read_bytes() == (
                log_source.read_bytes()
            )
            assert requests.get(f"{server.url}/obslogs/N20251123S0001.fits", timeout=30).status_code == 400  # noqa: E501
            assert requests.get(f"{server.url}/obslogs/present", timeout=30).status_code == 400

            def miscfiles(**params: str) -> list[dict]:
                answer = requests.get(f"{server.url}/miscfiles", params=params, timeout=30)
                assert answer.status_code == 200, answer.text
                return answer.json()

            [found] = miscfiles(program="2025b-q-101", name="finding")
            assert (found["filename"], found["description"], found["release"]) == (
                MISC, "Finding charts", "2026-05-23T00:00:00",
            )  # fmt: skip
            assert found["file_md5"] == file_md5(misc_source).md5
            assert miscfiles(program="GS-") == [] and miscfiles(name="%") == []
            assert requests.get(f"{server.url}/file/{MISC}", timeout=30).content == (
                misc_source.read_bytes()
            )

            # Already there: nothing sent again but the metadata, whose change follows it.
            (summit.storage_root / f"{MISC}.json").write_text(
                json.dumps({**META, "description": "Finding charts, revised"})
            )
            updated = ingest(session, summit, MISC)
            assert updated.action is IngestAction.META_UPDATED
            assert updated.queued == (f"export to {server.url}",)
            assert exporter.export(session, MISC, "", server.url).action == "already there"
            process_archive_queues(archive)
            assert miscfiles(name="finding")[0]["description"] == "Finding charts, revised"
        finally:
            exporter.close()
