"""Curation commands against real directories, a real archive app over HTTP, and real
databases: delete_files deletes only what the archive confirms, diskspace_check alerts under its
threshold, database_backup writes dumps that pg_restore reads and prunes old ones."""

from __future__ import annotations

import bz2
import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config, ConfigError
from fits_storage.curation.backup import BackupError, backup_database, pg_dump_command
from fits_storage.curation.delete import DELETED, KEPT, _delete
from fits_storage.curation.diskspace import Space, Threshold
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.ingest import ingest_file
from fits_storage.ingest.ingest import mark_not_present
from fits_storage.ingest.rollcall import present_versions
from fits_storage.orm import DiskFile, File
from fits_storage.queues import get_queue
from tests.conftest import _migrated, make_test_config
from tests.fitsdata import make_observatory_file, observatory_filename
from tests.processes import run_cli
from tests.test_alerts import Inbox, run_command
from tests.test_web import ServerThread, free_port

OLD = time.time() - 30 * 86400


def run(config: Config, command: str, *args: str) -> subprocess.CompletedProcess:
    return run_cli(config, command, *args, timeout=120)


# -- delete_files ---------------------------------------------------------------------------


def data_md5_of(path: Path) -> str:
    """md5 of the uncompressed bytes, as the archive records a file it stores compressed."""
    data = path.read_bytes()
    return hashlib.md5(bz2.decompress(data) if path.suffix == ".bz2" else data).hexdigest()


def archive_holds(factory: sessionmaker[Session], filename: str, data_md5: str) -> None:
    """The archive's database records ``filename`` (stored as .bz2) with this data md5."""
    filename = filename.removesuffix(".bz2")
    with factory() as session:
        file = File(name=filename)
        session.add(file)
        session.flush()
        session.add(
            DiskFile(
                file_id=file.id,
                filename=filename + ".bz2",
                path="",
                present=True,
                canonical=True,
                file_size=1234,
                file_md5="0" * 32,
                lastmod=datetime(2025, 11, 23),
                mtime_ns=0,
                compressed=True,
                data_size=5678,
                data_md5=data_md5,
            )
        )
        session.commit()


def present(factory: sessionmaker[Session]) -> set[str]:
    with factory() as session:
        return set(session.scalars(select(DiskFile.filename).where(DiskFile.present)))


@pytest.fixture
def archive(tmp_path: Path) -> tuple[ServerThread, sessionmaker[Session]]:
    url = _migrated(f"sqlite:///{tmp_path / 'archive.db'}")
    config = make_test_config(tmp_path / "archive", url, is_archive="true")
    engine = make_engine(url)
    with ServerThread(config) as server:
        yield server, make_session_factory(engine)
    engine.dispose()


def test_delete_files_deletes_only_what_the_archive_confirms(
    config: Config,
    session: Session,
    session_factory: sessionmaker[Session],
    archive: tuple[ServerThread, sessionmaker[Session]],
) -> None:
    server, archive_db = archive
    root = config.storage_root
    names = {
        role: observatory_filename(frame=frame)
        for frame, role in enumerate(
            ["confirmed", "lacking", "other_md5", "young", "pending", "changed", "bz2"], start=1
        )
    }
    names["bz2"] += ".bz2"
    for frame, (role, name) in enumerate(names.items(), start=1):
        path = make_observatory_file(root, name, seed=frame)
        if role != "young":
            os.utime(path, (OLD, OLD))
        ingest_file(session, config, name)
        session.commit()
        if role != "lacking":
            held = data_md5_of(path) if role != "other_md5" else "f" * 32
            archive_holds(archive_db, name, held)
    get_queue("ingest", config).add(session, names["pending"], force=True)
    session.commit()
    # Rewritten after its ingest and export: the archive holds the old bytes' md5.
    changed = root / names["changed"]
    make_observatory_file(root, names["changed"], seed=99)
    os.utime(changed, (OLD, OLD))

    dry = run(config, "delete_files", f"--archive={server.url}", "--dryrun")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 2 " in dry.stdout
    assert all((root / name).exists() for name in names.values())
    assert present(session_factory) == set(names.values())

    done = run(config, "delete_files", f"--archive={server.url}")
    assert done.returncode == 0, done.stderr
    assert "deleted 2 " in done.stdout and "kept 3 not confirmed" in done.stdout
    assert "1 too young, 1 with queue work pending" in done.stdout
    assert not (root / names["confirmed"]).exists() and not (root / names["bz2"]).exists()
    kept = {name for role, name in names.items() if role not in ("confirmed", "bz2")}
    assert {p.name for p in root.iterdir() if p.is_file()} == kept
    assert present(session_factory) == kept
    with session_factory() as check:  # the row stays, marked not present
        assert (
            check.scalar(select(DiskFile.present).where(DiskFile.filename == names["confirmed"]))
            is False
        )
    log = (config.log_dir / "delete_files.log").read_text()
    assert f"{names['lacking']}: keep:" in log and "does not hold it" in log
    assert f"{names['other_md5']}: keep:" in log and "holds it with another md5" in log
    assert f"{names['changed']}: keep:" in log
    assert f"{names['confirmed']}: deleted and marked not present" in log


def test_a_file_changed_after_its_check_is_kept(
    config: Config, session: Session, session_factory: sessionmaker[Session]
) -> None:
    """The last look before the unlink: a file rewritten since it was hashed, or a version
    re-ingested meanwhile, stays (and stays present); an unchanged one goes."""
    paths = [
        make_observatory_file(config.storage_root, observatory_filename(frame=f), seed=f)
        for f in (1, 2, 3)
    ]
    for path in paths:
        ingest_file(session, config, path.name)
        session.commit()
    versions = {v.filename: v for batch in present_versions(session_factory) for v in batch}
    log = logging.getLogger("test_curation")
    checked = [os.lstat(path) for path in paths]
    rewritten, reingested, unchanged = paths
    os.utime(rewritten, ns=(0, checked[0].st_mtime_ns + 10**9))
    mark_not_present(session, versions[reingested.name].id)  # as if a newer version came
    session.commit()
    outcomes = [
        _delete(session_factory, versions[path.name], path, before, log)
        for path, before in zip(paths, checked, strict=True)
    ]
    assert outcomes == [KEPT, KEPT, DELETED]
    assert rewritten.exists() and reingested.exists() and not unchanged.exists()
    assert present(session_factory) == {rewritten.name}


def test_delete_files_deletes_nothing_when_the_archive_is_unreachable(
    config: Config, session: Session, session_factory: sessionmaker[Session]
) -> None:
    path = make_observatory_file(config.storage_root, observatory_filename(frame=7), seed=7)
    os.utime(path, (OLD, OLD))
    ingest_file(session, config, path.name)
    session.commit()
    result = run(config, "delete_files", f"--archive=http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "archive unreachable" in result.stderr
    assert path.exists() and present(session_factory) == {path.name}


# -- diskspace_check ------------------------------------------------------------------------


@pytest.fixture
def plain_config(tmp_path: Path) -> Config:
    return make_test_config(tmp_path, f"sqlite:///{tmp_path / 'fits_storage.db'}")


def test_threshold_needs_both_bytes_and_percent() -> None:
    threshold = Threshold(min_free=100, min_free_percent=10)
    assert threshold.shortfall(Space(Path("/d"), total=1000, free=100)) is None
    assert "less than 100 B" in (threshold.shortfall(Space(Path("/d"), 1000, 99)) or "")
    assert "less than 10%" in (threshold.shortfall(Space(Path("/d"), 10_000, 999)) or "")


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    """A real SMTP server (aiosmtpd) on loopback, keeping what it is sent."""
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, f"127.0.0.1:{port}"
    finally:
        controller.stop()


def test_low_disk_space_is_mailed_to_the_admins(
    smtp: tuple[Inbox, str], plain_config: Config
) -> None:
    handler, server = smtp
    total = shutil.disk_usage(plain_config.storage_root).total
    dry = run_command(plain_config, server, "diskspace_check", "--dryrun", f"--min-free={total}")
    assert dry.returncode == 1 and handler.messages == []
    low = run_command(plain_config, server, "diskspace_check", f"--min-free={total + 1}")
    assert low.returncode == 1
    (mail,) = handler.messages
    assert mail["To"] == "admins@example.org" and "low disk space" in mail["Subject"]


def test_a_percentage_above_100_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'diskspace_min_free_percent'.*at most 100"):
        make_test_config(tmp_path, "sqlite://", diskspace_min_free_percent="150")


def test_diskspace_check_on_real_directories(plain_config: Config, tmp_path: Path) -> None:
    data = plain_config.storage_root
    total = shutil.disk_usage(data).total
    fine = run(plain_config, "diskspace_check", "--min-free=1", "--min-free-percent=1")
    assert fine.returncode == 0, fine.stderr
    assert "0 below the threshold" in fine.stdout

    low = run(plain_config, "diskspace_check", f"--path={data}", f"--min-free={total + 1}")
    assert low.returncode == 1
    assert "CRITICAL" in low.stderr and f"low disk space: {data}: only" in low.stderr
    log = (plain_config.log_dir / "diskspace_check.log").read_text()
    assert "CRITICAL" in log and "low disk space" in log

    dry = run(plain_config, "diskspace_check", "--min-free-percent=100", "--dryrun")
    assert dry.returncode == 1
    assert "CRITICAL" not in dry.stderr and "WARNING" in dry.stderr

    missing = run(plain_config, "diskspace_check", f"--path={tmp_path / 'not_mounted'}")
    assert missing.returncode == 1 and "cannot measure" in missing.stderr

    bad = run(plain_config, "diskspace_check", "--min-free-percent=150")
    assert bad.returncode == 2 and "at most 100" in bad.stderr


# -- database_backup ------------------------------------------------------------------------


def seed_rows(url: str, config: Config) -> None:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        session.add(File(name="N20251123S0001.fits"))
        get_queue("ingest", config).add(session, "N20251123S0002.fits")
        session.commit()
    engine.dispose()


def test_database_backup_pg_dump_reads_back_with_pg_restore(tmp_path: Path, pg_db_url: str) -> None:
    config = make_test_config(tmp_path, pg_db_url)
    seed_rows(pg_db_url, config)
    schema = pg_db_url.rsplit("%3D", 1)[1]
    listings = {}
    for label, args in (("all", []), ("no_queues", ["--no-queues"])):
        directory = tmp_path / label
        result = run(config, "database_backup", f"--dir={directory}", *args)
        assert result.returncode == 0, result.stderr
        (dump,) = directory.iterdir()
        assert dump.name.startswith("fits_storage-") and dump.suffix == ".dump"
        listing = subprocess.run(
            ["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True
        ).stdout
        listings[label] = listing
        assert f"TABLE DATA {schema} file " in listing
        assert f"TABLE {schema} ingestqueue " in listing
        assert "test_" not in listing.replace(schema, "")  # only this system's schema
    assert f"TABLE DATA {schema} ingestqueue " in listings["all"]
    assert f"TABLE DATA {schema} ingestqueue " not in listings["no_queues"]


def test_pg_dump_password_is_not_on_the_command_line(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    url = make_url("postgresql://fits:s3cret@db.example.org:5433/fits?options=-csearch_path%3Dfs")
    command, env = pg_dump_command(url, tmp_path / "x.dump", no_queues=True)
    assert "s3cret" not in " ".join(command) and env["PGPASSWORD"] == "s3cret"
    assert "--schema=fs" in command and "--exclude-table-data=fs.ingestqueue" in command


def test_database_backup_failure_prunes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    directory.mkdir()
    old = directory / "fits_storage-20250101T000000Z.dump"
    old.write_bytes(b"old dump")
    with pytest.raises(BackupError, match="pg_dump failed"):
        backup_database(f"postgresql://nobody@127.0.0.1:{free_port()}/none", directory, keep=1)
    assert sorted(p.name for p in directory.iterdir()) == [old.name]


def test_sqlite_backup_is_consistent_and_pruned(tmp_path: Path) -> None:
    url = _migrated(f"sqlite:///{tmp_path / 'fits_storage.db'}")
    config = make_test_config(tmp_path, url)
    seed_rows(url, config)
    directory = tmp_path / "backups"
    directory.mkdir()
    (directory / "notes.txt").write_text("not a dump")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = []
    for day in range(4):
        result = backup_database(
            url, directory, keep=2, no_queues=True, now=start + timedelta(days=day)
        )
        made.append(result.dump)
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted([made[2].name, made[3].name, "notes.txt"])
    copy = sqlite3.connect(made[3])
    assert copy.execute("select name from file").fetchall() == [("N20251123S0001.fits",)]
    assert copy.execute("select count(*) from ingestqueue").fetchone() == (0,)
    assert copy.execute("pragma integrity_check").fetchone() == ("ok",)
    copy.close()
    engine = make_engine(url)
    with engine.connect() as conn:  # the live database keeps its queue
        assert conn.execute(text("select count(*) from ingestqueue")).scalar() == 1
    engine.dispose()

    dry = backup_database(url, directory, keep=1, dryrun=True, now=start + timedelta(days=9))
    assert [p.name for p in dry.pruned] == [made[2].name, made[3].name]
    assert sorted(p.name for p in directory.iterdir()) == names  # nothing written or pruned
