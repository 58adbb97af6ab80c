"""The summit side end to end, with real processes: DHS disk -> copy_from_dhs -> ingest queue ->
two service_ingest_queue instances -> database. Plus deferral, and SIGKILL at random moments.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.orm.file import DiskFile
from fits_storage.orm.queues import IngestQueue
from fits_storage.queues import get_queue
from tests import fitsdata
from tests.conftest import make_test_config
from tests.processes import environ_for, stop, stopped_after, wait_for


def start(config: Config, module: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", f"fits_storage.cli.{module}", *args],
        env=environ_for(config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_copier(config: Config) -> subprocess.Popen:
    return start(config, "copy_from_dhs", "--name=e2e", "--lockfile", "--interval=0.3")


def start_ingester(config: Config, name: str, *args: str) -> subprocess.Popen:
    return start(config, "service_ingest_queue", f"--name={name}", "--lockfile", *args)


class Database:
    def __init__(self, config: Config) -> None:
        self.engine = make_engine(config.database_url)
        self.factory = make_session_factory(self.engine)
        self.queue = get_queue("ingest", config)

    def present(self) -> dict[str, str]:
        with self.factory() as session:
            rows = session.execute(
                select(DiskFile.filename, DiskFile.file_md5).where(DiskFile.present)
            )
            return dict(rows.all())

    def versions(self) -> Counter[str]:
        with self.factory() as session:
            rows = session.execute(
                select(DiskFile.filename, func.count()).group_by(DiskFile.filename)
            )
            return Counter(dict(rows.all()))

    def queue_rows(self) -> list[tuple[str, str, str | None]]:
        with self.factory() as session:
            return session.execute(
                select(IngestQueue.filename, IngestQueue.status, IngestQueue.error)
            ).all()

    def close(self) -> None:
        self.engine.dispose()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def populate(dhs: Path, frames: int, shape: tuple[int, int] = (32, 48)) -> dict[str, Path]:
    """Generated raw files, the real GMOS-S frame and real astropy files, as the DHS names them."""
    files = {}
    for frame in range(1, frames + 1):
        path = fitsdata.make_observatory_file(
            dhs, f"N20251123S{frame:04d}.fits", seed=frame, shape=shape
        )
        files[path.name] = path
    gmos = fitsdata.copy_gmos_file(dhs, "S20251123S0500.fits")
    files[gmos.name] = gmos
    for n, name in enumerate(("o4sp040b0_raw.fits", "tb.fits", "comp.fits"), start=501):
        path = fitsdata.copy_astropy_file(name, dhs, f"S20251123S{n:04d}.fits")
        files[path.name] = path
    return files


def write_slowly(path: Path, data: bytes, seconds: float, observed: list[bool]) -> None:
    """Write like the DHS: in place, a piece at a time; note if a copy appears before the end."""
    pieces = 8
    step = len(data) // pieces + 1
    dest = None
    with open(path, "wb") as handle:
        for start_at in range(0, len(data), step):
            handle.write(data[start_at : start_at + step])
            handle.flush()
            time.sleep(seconds / pieces)
            dest = dest or path.parent.parent / "dataflow" / path.name
            observed.append(dest.exists())


@pytest.mark.slow
def test_files_flow_from_dhs_to_database_exactly_once(tmp_path: Path, db_url: str) -> None:
    config = make_test_config(tmp_path, db_url, min_dhs_age_seconds="1")
    files = populate(config.dhs_perm, 12)
    fitsdata.write_not_fits(config.dhs_perm / "N20251123S0900.fits")
    (config.dhs_perm / ".snapshot").mkdir()
    big = fitsdata.make_observatory_file(tmp_path, "N20251123S0100.fits", shape=(256, 256))
    slow_target = config.dhs_perm / big.name
    db = Database(config)
    processes = [
        start_copier(config),
        start_ingester(config, "siq1"),
        start_ingester(config, "siq2"),
    ]
    with closing(db), stopped_after(*processes):
        observed: list[bool] = []
        writer = threading.Thread(
            target=write_slowly, args=(slow_target, big.read_bytes(), 3.0, observed)
        )
        writer.start()
        writer.join()
        assert observed and not any(observed), "copied while still being written"
        files[slow_target.name] = slow_target

        expected = {name: md5(path) for name, path in files.items()}
        wait_for(lambda: db.present() == expected, 40, "every complete file ingested")
        wait_for(lambda: not db.queue_rows(), 10, "the ingest queue to empty")
        for name, path in files.items():
            assert (config.storage_root / name).read_bytes() == path.read_bytes()
        assert set(db.versions().values()) == {1}, "a file was ingested more than once"

        # Rewritten on the DHS disk: a new version, the old one no longer present.
        rewritten = fitsdata.make_observatory_file(config.dhs_perm, "N20251123S0003.fits", seed=333)
        expected[rewritten.name] = md5(rewritten)
        wait_for(lambda: db.present() == expected, 30, "the rewritten file's new version")
        versions = db.versions()
        assert versions[rewritten.name] == 2
        assert all(n == 1 for name, n in versions.items() if name != rewritten.name)
        assert "N20251123S0900.fits" not in db.present()
        assert not (config.storage_root / "N20251123S0900.fits").exists()
    log = (config.log_dir / "copy_from_dhs-e2e.log").read_text()
    assert log.count("N20251123S0900.fits: not a complete FITS file") == 1


def test_recently_modified_files_are_deferred(tmp_path: Path, db_url: str) -> None:
    config = make_test_config(tmp_path, db_url, defer_threshold="3", defer_delay="1")
    path = fitsdata.make_observatory_file(config.storage_root, "N20251123S0001.fits")
    db = Database(config)
    with db.factory() as session:
        db.queue.add(session, path.name)
        session.commit()

    def deferred() -> bool:
        os.utime(path)  # still being written, as the worker sees it, however slow its start
        return any("deferred" in (r[2] or "") for r in db.queue_rows())

    worker = start_ingester(config, "defer")
    with stopped_after(worker):
        wait_for(deferred, 30, "deferral")
        assert path.name not in db.present()
        wait_for(lambda: path.name in db.present(), 30, "ingest once the file is old enough")
        wait_for(lambda: not db.queue_rows(), 10, "the entry to complete")

    fresh = fitsdata.make_observatory_file(config.storage_root, "N20251123S0002.fits")
    with db.factory() as session:
        db.queue.add(session, fresh.name)
        session.commit()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.service_ingest_queue", "--no-defer",
         "--oneshot", "--name=nodefer"],
        env=environ_for(config),
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert fresh.name in db.present()
    db.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, db_url: str
) -> None:
    config = make_test_config(
        tmp_path, db_url, min_dhs_age_seconds="0.5", queue_lease_seconds="2",
        queue_max_attempts="50",
    )  # fmt: skip
    files = populate(config.dhs_perm, 30, shape=(384, 384))
    expected = {name: md5(path) for name, path in files.items()}
    db = Database(config)
    names = ["copier", "siq1", "siq2"]

    def launch(name: str) -> subprocess.Popen:
        return start_copier(config) if name == "copier" else start_ingester(config, name)

    running = {name: launch(name) for name in names}
    rng = random.Random(1234)
    kills = 0
    try:
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.05, 0.8))
            victim = rng.choice(names)
            running[victim].send_signal(signal.SIGKILL)
            running[victim].wait()
            kills += 1
            partial = [
                p.name
                for p in config.storage_root.glob("*.fits")
                if p.name in files and p.read_bytes() != files[p.name].read_bytes()
            ]
            assert not partial, f"partial file under a real name: {partial}"
            running[victim] = launch(victim)
        wait_for(lambda: db.present() == expected, 60, "every file ingested after the kills")
        wait_for(
            lambda: all(r[1] != "in_progress" for r in db.queue_rows()) and not db.queue_rows(),
            30,
            "the ingest queue to empty",
        )
    finally:
        for process in running.values():
            stop(process)
    assert kills >= 10
    assert set(db.versions().values()) == {1}, "an ingest was recorded twice"
    for name in files:
        assert md5(config.storage_root / name) == expected[name]
    real_names = {p.name for p in config.storage_root.iterdir() if p.suffix == ".fits"}
    assert real_names == set(files)
    leftovers = [p.name for p in config.storage_root.iterdir() if p.name.endswith(".part")]
    assert all(name.startswith(".") for name in leftovers)
    db.close()
