"""Two workers ingesting the same file name at the same moment, in real threads."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config
from fits_storage.ingest import IngestAction, ingest_file
from fits_storage.orm import DiskFile, File, Header
from tests.fitsdata import make_observatory_file, observatory_filename

ROUNDS = 12


def _race(
    session_factory: sessionmaker[Session], config: Config, names: list[str], paths: list[str]
) -> tuple[list[IngestAction], list[BaseException]]:
    """Each thread ingests every name from its own path; a barrier starts each round together."""
    barrier = threading.Barrier(len(paths))
    actions: list[IngestAction] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(path: str) -> None:
        with session_factory() as session:
            for name in names:
                try:
                    barrier.wait(timeout=60)
                    result = ingest_file(session, config, name, path)
                    session.commit()
                    with lock:
                        actions.append(result.action)
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    session.rollback()
                    with lock:
                        errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return actions, errors


def test_same_name_from_two_folders_at_once(
    session_factory: sessionmaker[Session], config: Config
) -> None:
    names = [observatory_filename(frame=n) for n in range(1, ROUNDS + 1)]
    for n, name in enumerate(names):
        make_observatory_file(config.storage_root / "a", name, seed=n)
        make_observatory_file(config.storage_root / "b", name, seed=100 + n)
    actions, errors = _race(session_factory, config, names, ["a", "b"])
    assert errors == []
    counts = Counter(actions)
    assert counts == {IngestAction.NEW: ROUNDS, IngestAction.NEW_VERSION: ROUNDS}
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(File)) == ROUNDS
        assert session.scalar(select(func.count()).select_from(DiskFile)) == 2 * ROUNDS
        assert session.scalar(select(func.count()).select_from(Header)) == 2 * ROUNDS
        present = session.execute(
            select(File.name, func.count())
            .join(DiskFile)
            .where(DiskFile.present)
            .group_by(File.name)
        ).all()
        assert sorted(present) == sorted((name, 1) for name in names)
        canonical = session.scalar(
            select(func.count()).select_from(DiskFile).where(DiskFile.canonical)
        )
        assert canonical == ROUNDS


def test_same_file_ingested_twice_at_once_is_one_version(
    session_factory: sessionmaker[Session], config: Config
) -> None:
    names = [observatory_filename("S", frame=n) for n in range(1, ROUNDS + 1)]
    for n, name in enumerate(names):
        make_observatory_file(config.storage_root / "same", name, seed=n)
    actions, errors = _race(session_factory, config, names, ["same", "same"])
    assert errors == []
    counts = Counter(actions)
    assert counts[IngestAction.NEW] == ROUNDS
    # The later of each pair finds the version already recorded (before or after hashing).
    later = counts[IngestAction.MD5_UNCHANGED] + counts[IngestAction.UNCHANGED]
    assert later == ROUNDS, counts
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(DiskFile)) == ROUNDS
        assert session.scalar(select(func.count()).select_from(Header)) == ROUNDS
