"""Shared fixtures: a database on SQLite and PostgreSQL, a configuration, a session.

PostgreSQL comes from ``FITS_STORAGE_TEST_PG_URL`` (default the local server); each test gets
its own schema so tests never see each other. Without PostgreSQL the PostgreSQL half of each
database test skips with a loud reason, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from fits_storage.config import Config, load_config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.db.schema import create_tables

PG_URL = os.environ.get("FITS_STORAGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_pg_problem: list[str] = []


def _pg_available() -> str | None:
    """None if PostgreSQL answers, else why not (checked once per run)."""
    if not _pg_problem:
        try:
            engine = make_engine(PG_URL)
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _pg_problem.append("")
        except Exception as exc:  # noqa: BLE001
            _pg_problem.append(f"PostgreSQL at {PG_URL} unavailable: {exc}")
    return _pg_problem[0] or None


def require_postgresql() -> None:
    problem = _pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"{problem} (CI=true: PostgreSQL tests must run)")
        pytest.skip(f"SKIPPING POSTGRESQL TESTS: {problem}")


def pg_schema_url(schema: str) -> str:
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options=-csearch_path%3D{schema}"


@contextmanager
def postgresql_schema(migrate: bool = True) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL (migrated unless told not to); yields its URL and
    drops it after."""
    require_postgresql()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        url = pg_schema_url(schema)
        yield _migrated(url) if migrate else url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL at the current schema, on each backend."""
    if request.param == "sqlite":
        yield _migrated(f"sqlite:///{tmp_path / 'fits_storage.db'}")
        return
    with postgresql_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that answers but has no tables (create_tables never ran), on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with postgresql_schema(migrate=False) as url:
        yield url


@pytest.fixture
def pg_db_url() -> Iterator[str]:
    """For tests of PostgreSQL-only behaviour (a server connection to cut, LISTEN/NOTIFY)."""
    with postgresql_schema() as url:
        yield url


def _migrated(url: str) -> str:
    """``url``'s empty database brought to the current schema: a copy of a SQLite file, or a
    replay of the statements, that ``create_tables`` produced once in this process (the Alembic
    run cost about half a second per test; what it builds is the same every time)."""
    if url.startswith("sqlite:///"):
        shutil.copyfile(_sqlite_template(), url.removeprefix("sqlite:///"))
        return url
    engine = make_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for statement, parameters, many in _pg_migration():
                (cursor.executemany if many else cursor.execute)(statement, parameters)
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
    return url


_templates: dict[str, object] = {}


def _sqlite_template() -> str:
    """A SQLite file that ``create_tables`` migrated, made once per process."""
    if "sqlite" not in _templates:
        directory = tempfile.mkdtemp(prefix="fits_storage_template_")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        path = Path(directory) / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        create_tables(engine)
        engine.dispose()  # the last connection checkpoints the WAL: the file holds everything
        _templates["sqlite"] = str(path)
    return _templates["sqlite"]  # type: ignore[return-value]


def _pg_migration() -> list[tuple[str, object, bool]]:
    """Every statement ``create_tables`` sent to an empty PostgreSQL schema, recorded once per
    process. Names are unqualified (the schema comes from the search path), so the statements
    build the same schema in any other empty one."""
    if "postgresql" not in _templates:
        recorded: list[tuple[str, object, bool]] = []
        with postgresql_schema(migrate=False) as url:
            schema = url.rsplit("%3D", 1)[1]
            engine = make_engine(url)

            @event.listens_for(engine, "before_cursor_execute")
            def _record(_conn, _cursor, statement, parameters, _context, many):  # type: ignore[no-untyped-def]
                recorded.append((statement, parameters, many))

            create_tables(engine)
            engine.dispose()
        assert not any(schema in f"{s}{p}" for s, p, _ in recorded), "a statement names the schema"
        _templates["postgresql"] = recorded
    return _templates["postgresql"]  # type: ignore[return-value]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session
        session.rollback()


def make_test_config(tmp_path: Path, db_url: str, **overrides: str) -> Config:
    """A configuration rooted in ``tmp_path``, from the environment variables operators use."""
    environ = {
        "FITS_STORAGE_ROOT": str(tmp_path / "dataflow"),
        "FITS_STORAGE_DB_URL": db_url,
        "FITS_STORAGE_DHS_PERM": str(tmp_path / "dhs"),
        "FITS_STORAGE_QUEUE_LEASE_SECONDS": "3",
        "FITS_STORAGE_QUEUE_POLL_SECONDS": "0.2",
        "FITS_STORAGE_DEFER_THRESHOLD": "0",
    }
    environ.update({f"FITS_STORAGE_{k.upper()}": v for k, v in overrides.items()})
    config = load_config(environ=environ, files=[])
    for directory in (config.storage_root, config.dhs_perm, config.log_dir, config.lockfile_dir):
        directory.mkdir(parents=True, exist_ok=True)
    return config


def config_environ(config: Config) -> dict[str, str]:
    """Environment for a subprocess that must see the same configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITS_STORAGE_")}
    for key in (
        "storage_root",
        "dhs_perm",
        "database_url",
        "log_dir",
        "lockfile_dir",
        "upload_staging_dir",
        "queue_lease_seconds",
        "queue_poll_seconds",
        "queue_max_attempts",
        "queue_max_run_seconds",
        "one_shot_db_patience",
        "defer_threshold",
        "defer_delay",
        "min_dhs_age_seconds",
        "is_archive",
        "using_s3",
        "s3_bucket_name",
        "s3_endpoint_url",
        "using_previews",
        "using_calcache",
        "export_auth_cookie",
    ):
        env[f"FITS_STORAGE_{key.upper()}"] = str(getattr(config, key))
    env["FITS_STORAGE_MAX_UNCOMPRESSED_BYTES"] = str(config.max_uncompressed_bytes)
    env["FITS_STORAGE_FILE_MODE"] = "" if config.file_mode is None else oct(config.file_mode)
    env["FITS_STORAGE_EXPORT_DESTINATIONS"] = ",".join(config.export_destinations)
    env["FITS_STORAGE_UPLOAD_AUTH_COOKIE"] = ",".join(config.upload_auth_cookie)
    env["FITS_STORAGE_API_AUTH_COOKIE"] = ",".join(config.api_auth_cookie)
    env["FITS_STORAGE_CONFIG"] = ""
    return env


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    return make_test_config(tmp_path, db_url)
