"""Schema management: ``create_tables`` brings any database to the current schema, idempotently."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import inspect

from fits_storage.config import Config
from fits_storage.db.engine import make_engine
from fits_storage.db.schema import head_revision
from tests.processes import environ_for

TABLES = {
    "file",
    "diskfile",
    "header",
    "fulltextheader",
    "diskfilereport",
    "fileuploadlog",
    "ingestqueue",
    "exportqueue",
    "previewqueue",
    "calcachequeue",
    "uploadqueue",
}


def run_create_tables(config: Config) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fits_storage.cli.create_tables"],
        env=environ_for(config),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_create_tables_twice_is_harmless(config: Config) -> None:
    # The fixture already migrated this database; an empty one is made here too.
    first = run_create_tables(config)
    second = run_create_tables(config)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert f"already at schema revision {head_revision()}" in second.stdout
    engine = make_engine(config.database_url)
    try:
        inspector = inspect(engine)
        assert TABLES <= set(inspector.get_table_names())
        indexes = {i["name"]: i for i in inspector.get_indexes("ingestqueue")}
        assert indexes["uq_ingestqueue_waiting"]["unique"]
        assert {"ix_ingestqueue_claim", "ix_ingestqueue_in_progress"} <= set(indexes)
    finally:
        engine.dispose()


def test_create_tables_on_an_empty_sqlite_database(tmp_path) -> None:
    from tests.conftest import make_test_config

    config = make_test_config(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}")
    result = run_create_tables(config)
    assert result.returncode == 0, result.stderr
    assert "upgraded from empty to" in result.stdout
