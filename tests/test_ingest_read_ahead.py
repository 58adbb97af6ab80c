"""A worker that reads files ahead (in a process beside it) records exactly what an ingest
that reads every file itself records."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.ingest import ingest_file
from fits_storage.orm import DiskFile, Header
from fits_storage.orm.file import DiskFileReport, FullTextHeader
from fits_storage.queues import get_queue
from tests.conftest import _migrated, make_test_config
from tests.fitsdata import astropy_fits_names, copy_astropy_files, copy_gmos_file
from tests.processes import environ_for

COLUMNS = [c for c in Header.__table__.columns if c.name not in {"id", "diskfile_id"}]


def recorded(session: Session) -> dict[str, tuple]:
    """Per file: its header row, full text and reports, without the ids."""
    rows = session.execute(
        select(DiskFile.filename, Header, FullTextHeader.fulltext, DiskFileReport)
        .join(Header, Header.diskfile_id == DiskFile.id)
        .join(FullTextHeader, FullTextHeader.diskfile_id == DiskFile.id)
        .join(DiskFileReport, DiskFileReport.diskfile_id == DiskFile.id)
    )
    return {
        name: (
            {c.name: getattr(header, c.name) for c in COLUMNS},
            fulltext,
            (report.astropy_ok, report.astropy_report, report.fitsverify_ok),
        )
        for name, header, fulltext, report in rows
    }


def test_read_ahead_worker_matches_reading_in_process(
    tmp_path: Path, db_url: str, config: Config
) -> None:
    files = copy_astropy_files(config.storage_root, astropy_fits_names(include_invalid=False))
    files += [copy_gmos_file(config.storage_root, f"S20190808S{i:04d}.fits") for i in (1, 2, 3)]
    names = [f.name for f in files]
    factory = make_session_factory(make_engine(db_url))
    with factory() as session:
        get_queue("ingest", config).add_many(session, ({"filename": n} for n in names))
        session.commit()
    done = subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.service_ingest_queue", "--empty"],
        env=environ_for(config),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    log = (config.log_dir / "service_ingest_queue-default.log").read_text()
    assert "files read beside the worker" in log
    assert "read ahead: 0 of" not in log  # it did read ahead

    here = tmp_path / "here"
    local = make_test_config(here, _migrated(f"sqlite:///{tmp_path / 'here.db'}"))
    for path in files:
        shutil.copy2(path, local.storage_root / path.name)
    local_factory = make_session_factory(make_engine(local.database_url))
    with local_factory() as session:
        for name in names:
            ingest_file(session, local, name, "")
            session.commit()

    with factory() as by_worker, local_factory() as by_hand:
        expected = recorded(by_hand)
        assert sorted(expected) == sorted(names)
        assert recorded(by_worker) == expected
