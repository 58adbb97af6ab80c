"""Schema management: ``create_tables`` brings any database to the current schema, idempotently."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from fits_storage.config import Config
from fits_storage.db.engine import make_engine
from fits_storage.db.schema import alembic_config, create_tables, head_revision
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
    "queueworker",
    "staffuser",
    "staffaudit",
    "preview",
    "previewnote",
    "calcache",
    "calcachestamp",
    "fileopsqueue",
    "updatelog",
    "obslog",
    "miscfile",
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
        assert indexes["uq_ingestqueue_in_progress"]["unique"]
        assert {"ix_ingestqueue_claim", "ix_ingestqueue_deferred"} <= set(indexes)
        checks = inspector.get_check_constraints("ingestqueue")
        assert [c["name"] for c in checks] == ["ck_ingestqueue_status"]
    finally:
        engine.dispose()


def test_create_tables_on_an_empty_sqlite_database(tmp_path) -> None:
    from tests.conftest import make_test_config

    config = make_test_config(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}")
    result = run_create_tables(config)
    assert result.returncode == 0, result.stderr
    assert "upgraded from empty to" in result.stdout


def test_upgrade_from_0001_settles_files_in_progress_twice(db_url: str) -> None:
    """The unique in-progress index cannot be built over the duplicates the old race left: the
    upgrade keeps the oldest entry in progress and fails the others with a note."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
            for entry_id, path in ((1, "a"), (2, "b")):
                conn.execute(
                    text(
                        "INSERT INTO ingestqueue (id, filename, path, sortkey, status, added, "
                        "attempts, force, force_md5) VALUES (:id, 'x.fits', :path, 'x', "
                        "'in_progress', '2026-01-01 00:00:00', 1, false, false)"
                    ),
                    {"id": entry_id, "path": path},
                )
        create_tables(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, status, error FROM ingestqueue ORDER BY id")).all()
            assert [(r.id, r.status) for r in rows] == [(1, "in_progress"), (2, "failed")]
            assert "in progress at the same time" in rows[1].error
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE ingestqueue SET status = 'done' WHERE id = 1"))
    finally:
        engine.dispose()


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_the_start_up_schema_check_reads_revisions_without_alembic(db_url: str) -> None:
    """Every worker and cron job checks the schema as it starts; Alembic is not imported for
    it (its import and scripts cost about 0.15 s a start)."""
    check = (
        "import sys\n"
        "from fits_storage.db.engine import make_engine\n"
        "from fits_storage.db.schema import current_revision, head_revision, schema_problem\n"
        f"engine = make_engine({db_url!r})\n"
        "print(schema_problem(engine), current_revision(engine) == head_revision(),"
        " 'alembic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "True", "False"]


def test_a_database_without_tables_has_no_revision(empty_db_url: str) -> None:
    from fits_storage.db.schema import current_revision, schema_problem

    engine = make_engine(empty_db_url)
    assert current_revision(engine) is None
    assert "has no fits_storage tables" in (schema_problem(engine) or "")
    engine.dispose()
