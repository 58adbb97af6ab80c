"""Summit to archive end to end, with real processes and real HTTP on loopback.

The summit (its own database and storage root) runs copy_from_dhs, service_ingest_queue and
service_export_queue; the archive (another database and storage root) runs the web application
under uvicorn on a free port, ingest_uploaded_file and service_ingest_queue. Files dropped into
the summit's DHS directory must end up stored and ingested on the archive with the same data
md5, once each, on SQLite and on PostgreSQL; and the same when the archive is down for part of
the run.
"""

from __future__ import annotations

import bz2
import hashlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.orm.file import DiskFile
from fits_storage.orm.queues import ExportQueue, IngestQueue, UploadQueue
from fits_storage.orm.upload import FileUploadLog
from fits_storage.queues import get_queue
from tests import fitsdata
from tests.conftest import _migrated, make_test_config, postgresql_schema
from tests.processes import environ_for, stop, wait_for

COOKIE = "e2e-upload-secret"
pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(summit, archive): two separate databases (two PostgreSQL schemas) on each backend."""
    if request.param == "sqlite":
        yield (
            _migrated(f"sqlite:///{tmp_path / 'summit.db'}"),
            _migrated(f"sqlite:///{tmp_path / 'archive.db'}"),
        )
        return
    with postgresql_schema() as summit, postgresql_schema() as archive:
        yield summit, archive


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Site:
    """One server's configuration, processes and database."""

    def __init__(self, config: Config, logs: Path) -> None:
        self.config = config
        self.engine = make_engine(config.database_url)
        self.sessions = make_session_factory(self.engine)
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, label: str, module: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{label}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", f"fits_storage.cli.{module}", *args],
            env=environ_for(self.config),
            stdout=log,
            stderr=log,
        )
        log.close()
        self.processes[label] = process
        return process

    def stop(self, label: str) -> int:
        return stop(self.processes.pop(label))

    def stop_all(self) -> dict[str, int]:
        return {label: self.stop(label) for label in list(self.processes)}

    def present(self) -> dict[str, str]:
        with self.sessions() as session:
            rows = session.execute(
                select(DiskFile.filename, DiskFile.data_md5).where(DiskFile.present)
            )
            return dict(rows.all())

    def versions(self) -> Counter[str]:
        with self.sessions() as session:
            rows = session.execute(select(DiskFile.filename, func.count()).group_by("filename"))
            return Counter(dict(rows.all()))

    def uploads(self) -> Counter[str]:
        with self.sessions() as session:
            rows = session.execute(
                select(FileUploadLog.filename, func.count()).group_by(FileUploadLog.filename)
            )
            return Counter(dict(rows.all()))

    def queue(self, model: type) -> list[tuple]:
        with self.sessions() as session:
            return session.execute(
                select(model.filename, model.status, model.attempts, model.error)
            ).all()

    def failed(self) -> list[tuple]:
        return [
            (model.__tablename__, *row)
            for model in (IngestQueue, ExportQueue, UploadQueue)
            for row in self.queue(model)
            if row[1] == "failed"
        ]

    def close(self) -> None:
        self.stop_all()
        self.engine.dispose()


WEB_STOPPED = (0,)  # fits_storage_web exits 0 after a graceful stop on SIGTERM


def assert_clean_exits(codes: dict[str, int]) -> None:
    assert codes.pop("web", 0) in WEB_STOPPED, codes
    assert set(codes.values()) <= {0}, sorted(codes.items())


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def make_sites(tmp_path: Path, databases: tuple[str, str]) -> tuple[Site, Site, str]:
    summit_db, archive_db = databases
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    summit = make_test_config(
        tmp_path / "summit",
        summit_db,
        min_dhs_age_seconds="0.5",
        export_destinations=url,
        export_auth_cookie=COOKIE,
    )
    archive = make_test_config(
        tmp_path / "archive",
        archive_db,
        is_archive="true",
        upload_auth_cookie=COOKIE,
        upload_staging_dir=str(tmp_path / "archive" / "staging"),
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    return Site(summit, logs), Site(archive, logs), url


def start_summit(summit: Site) -> None:
    summit.start("copy", "copy_from_dhs", "--name=e2e", "--interval=0.3")
    summit.start("summit-ingest", "service_ingest_queue", "--name=summit")
    summit.start(
        "export", "service_export_queue", "--name=e2e", "--backoff-base=0.5",
        "--backoff-cap=2", "--pending-delay=0.5", "--connect-timeout=2",
        f"--spool-dir={summit.config.storage_root.parent / 'spool'}",
    )  # fmt: skip


def start_web(archive: Site, url: str) -> None:
    port = url.rsplit(":", 1)[1]
    archive.start("web", "web", "--host=127.0.0.1", f"--port={port}")
    wait_for(lambda: healthy(url), 30, "the archive web application to answer")


def start_archive_workers(archive: Site) -> None:
    archive.start("store", "ingest_uploaded_file", "--name=e2e")
    archive.start("archive-ingest", "service_ingest_queue", "--name=archive")


def drop_files(dhs: Path, frames: range) -> list[str]:
    """Raw files as the DHS writes them (generated ones, plus the real GMOS-S frame)."""
    names = []
    for frame in frames:
        path = fitsdata.make_observatory_file(
            dhs, f"N20251123S{frame:04d}.fits", seed=frame, shape=(64, 96)
        )
        names.append(path.name)
    return names


def data_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def arrived(summit: Site, archive: Site, names: list[str]) -> bool:
    """Every file is present on the archive, as .bz2, with the summit's data md5."""
    there, here = archive.present(), summit.present()
    return all(name in here and there.get(f"{name}.bz2") == here[name] for name in names)


def logs_of(site: Site) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in site.logs.glob("*.log")
    )


def test_files_dropped_on_the_summit_arrive_at_the_archive(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    summit, archive, url = make_sites(tmp_path, databases)
    try:
        start_web(archive, url)
        start_archive_workers(archive)
        start_summit(summit)
        names = drop_files(summit.config.dhs_perm, range(1, 9))
        gmos = fitsdata.copy_gmos_file(summit.config.dhs_perm, "S20251123S0500.fits")
        names.append(gmos.name)

        try:
            wait_for(lambda: arrived(summit, archive, names), 90, "every file at the archive")
            wait_for(lambda: not summit.queue(ExportQueue), 20, "the export queue to empty")
        except AssertionError:
            raise AssertionError(logs_of(summit)) from None

        for name in names:
            dhs_md5 = data_md5(summit.config.dhs_perm / name)
            assert summit.present()[name] == dhs_md5
            assert archive.present()[f"{name}.bz2"] == dhs_md5
            stored = archive.config.storage_root / f"{name}.bz2"
            assert hashlib.md5(bz2.decompress(stored.read_bytes())).hexdigest() == dhs_md5
        assert set(archive.uploads().values()) == {1}, archive.uploads()
        assert set(archive.versions().values()) == {1}
        assert summit.failed() == [] and archive.failed() == []

        # Exporting again is a no-op: the archive already has the same data md5.
        with summit.sessions() as session:
            get_queue("export", summit.config).add(session, names[0], destination=url)
            session.commit()
        wait_for(lambda: not summit.queue(ExportQueue), 20, "the re-export to finish")
        assert archive.uploads()[f"{names[0]}.bz2"] == 1
        assert "already at" in (summit.logs / "export.log").read_text()
    finally:
        codes = {**summit.stop_all(), **archive.stop_all()}
        summit.close()
        archive.close()
    assert_clean_exits(codes)


def test_archive_down_for_part_of_the_run(tmp_path: Path, databases: tuple[str, str]) -> None:
    summit, archive, url = make_sites(tmp_path, databases)
    try:
        start_web(archive, url)
        start_archive_workers(archive)
        start_summit(summit)
        first = drop_files(summit.config.dhs_perm, range(1, 4))
        wait_for(lambda: arrived(summit, archive, first), 60, "the first files at the archive")

        assert archive.stop("web") in WEB_STOPPED
        second = drop_files(summit.config.dhs_perm, range(4, 10))

        def backing_off() -> bool:
            rows = summit.queue(ExportQueue)
            waiting = [r for r in rows if r[1] == "waiting" and r[3] and "unavailable" in r[3]]
            return len(waiting) == len(second)

        wait_for(backing_off, 60, "every new export entry to wait on the dead archive")
        time.sleep(4)  # several backoff rounds (capped at 2s) with the archive still down
        rows = summit.queue(ExportQueue)
        assert all(status == "waiting" and attempts == 0 for _, status, attempts, _ in rows), rows
        assert summit.failed() == []

        start_web(archive, url)
        names = first + second
        try:
            wait_for(lambda: arrived(summit, archive, names), 60, "every file after the outage")
            wait_for(lambda: not summit.queue(ExportQueue), 20, "the export queue to empty")
        except AssertionError:
            raise AssertionError(logs_of(summit)) from None
        assert set(archive.uploads().values()) == {1}, archive.uploads()
        assert set(archive.versions().values()) == {1}
        assert summit.failed() == [] and archive.failed() == []
        log = (summit.logs / "export.log").read_text()
        assert "unavailable (1 in a row)" in log and "answers again" in log
    finally:
        codes = {**summit.stop_all(), **archive.stop_all()}
        summit.close()
        archive.close()
    assert_clean_exits(codes)
