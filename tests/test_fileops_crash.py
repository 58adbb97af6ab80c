"""The fileops worker SIGKILLed at random moments while it edits 100 files (a real process,
a real signal, PostgreSQL): every file is at all times either its old bytes or the fully
edited ones, every edited file is valid (astropy reads it, fitsverify passes), and every
request ends applied exactly once in ``updatelog``, its md5 after that of the new version the
ingest it queued records."""

from __future__ import annotations

import bz2
import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import func, select

from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.fileops.edit import parse_header, split_primary_header
from fits_storage.fileops.request import HeaderUpdate, queue_update
from fits_storage.fileops.values import keyword_changes
from fits_storage.ingest.ingest import ingest_file
from fits_storage.ingest.verify import fitsverify_program
from fits_storage.orm import FileopsQueue, IngestQueue, UpdateLog
from tests import fitsdata
from tests.conftest import IN_CI, make_test_config
from tests.processes import environ_for, wait_for

FILES = 100
KILLS = 6


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def split(path: Path) -> tuple[fits.Header, bytes]:
    """The primary header and the uncompressed bytes after it."""
    data = path.read_bytes()
    if path.name.endswith(".bz2"):
        data = bz2.decompress(data)
    raw, rest = split_primary_header(iter([data]))
    return parse_header(raw), rest


def state_of(path: Path, original: str, rest: bytes, changes: dict) -> str:
    """'old' or 'new'; anything else fails the test."""
    if md5(path) == original:
        return "old"
    header, after = split(path)
    assert after == rest, f"{path.name}: bytes after the primary header changed"
    for keyword, value in changes.items():
        assert header[keyword] == value, f"{path.name}: {keyword} is {header[keyword]!r}"
    return "new"


@pytest.mark.slow
def test_sigkill_during_edits_leaves_old_or_new_files_and_applies_once(
    tmp_path: Path, pg_db_url: str
) -> None:
    config = make_test_config(
        tmp_path, pg_db_url, queue_lease_seconds="1", queue_max_attempts="100"
    )
    rng = random.Random(13)
    files: dict[str, tuple[Path, str, bytes, dict]] = {}
    engine = make_engine(config.database_url)
    factory = make_session_factory(engine)
    with factory() as session:
        for n in range(1, FILES + 1):
            name = f"N20251123S{n:04d}.fits" + (".bz2" if n % 10 == 0 else "")
            path = fitsdata.make_observatory_file(
                config.storage_root, name, seed=n, extensions=2, shape=(64, 64), drop=("RAWCC",)
            )
            values = {"qa_state": rng.choice(["Fail", "Usable", "CHECK"]), "raw_site": "cc70"}
            changes = keyword_changes(values)
            files[name] = (path, md5(path), split(path)[1], changes)
            ingest_file(session, config, name)  # a request names an ingested file
            queue_update(session, config, name, "", HeaderUpdate(changes, values=values))
            session.commit()

    def applied() -> int:
        with factory() as session:
            return session.scalar(
                select(func.count()).select_from(UpdateLog).where(UpdateLog.applied.is_not(None))
            )

    def remaining() -> int:
        with factory() as session:
            return session.scalar(select(func.count()).select_from(FileopsQueue))

    def holding() -> set[int]:
        with factory() as session:
            held = select(FileopsQueue.pid).where(FileopsQueue.status == "in_progress")
            return set(session.scalars(held))

    def start(name: str, *args: str, command: str = "service_fileops_queue") -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", f"fits_storage.cli.{command}", f"--name={name}", *args],
            env=environ_for(config),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    # Two workers at a time (one starts up while the other edits); the older is killed at a
    # random moment while it holds an entry, and a new one started.
    workers = [start("w0"), start("w1")]
    kills = 0
    try:
        while remaining() and kills < KILLS:
            victim = workers.pop(0)
            wait_for(
                lambda v=victim: v.pid in holding() or v.poll() is not None or not remaining(),
                60,
                "the worker to be editing",
                step=0.02,
            )
            time.sleep(rng.uniform(0, 0.2))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            done = applied()  # before the files: the other worker goes on editing meanwhile
            states = [state_of(path, old, rest, ch) for path, old, rest, ch in files.values()]
            assert states.count("new") >= done
            workers.append(start(f"w{kills + 1}"))
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    try:
        final = start("last", "--empty")
        assert final.wait(120) == 0
        with factory() as session:
            assert session.scalars(select(FileopsQueue)).all() == []
            logs = session.scalars(select(UpdateLog)).all()
            assert len(logs) == FILES == len({log.request_id for log in logs})
            assert all(log.applied is not None and log.md5_after is None for log in logs)
            ingests = session.scalar(select(func.count()).select_from(IngestQueue))
        ingest = start("ingest", "--empty", command="service_ingest_queue")
        assert ingest.wait(300) == 0
        with factory() as session:
            logs = session.scalars(select(UpdateLog)).all()
    finally:
        engine.dispose()

    assert kills == KILLS, f"the queue emptied after {kills} kills"
    by_name = {log.filename: log for log in logs}
    verifier = fitsverify_program()
    if IN_CI:
        assert verifier, "fitsverify must be installed in CI"
    for name, (path, original, rest, changes) in files.items():
        assert state_of(path, original, rest, changes) == "new"
        log = by_name[name]
        assert (log.md5_before, log.md5_after) == (original, md5(path))
        old = json.loads(log.old_values)
        assert old["RAWCC"] is None and old["RAWGEMQA"] == "USABLE"
        with fits.open(path) as hdulist:
            hdulist.verify("exception")
            assert len(hdulist) == 3
        if verifier and not name.endswith(".bz2"):
            result = subprocess.run([verifier, "-e", "-q", str(path)], capture_output=True)
            assert result.returncode == 0, result.stdout + result.stderr
    assert ingests == FILES
    assert not list(config.storage_root.glob(".*.part"))
