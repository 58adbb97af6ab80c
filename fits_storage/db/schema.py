"""Bring a database to the current schema with the Alembic migrations shipped in the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection=None) -> AlembicConfig:  # type: ignore[no-untyped-def]
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def create_tables(engine: Engine) -> tuple[str | None, str | None]:
    """Upgrade to the newest schema; harmless when already there. Returns (before, after)."""
    before = current_revision(engine)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    return before, current_revision(engine)


def schema_problem(engine: Engine) -> str | None:
    """Why this database cannot be used by this version of the code, or None if it can."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return None
    if current is None:
        return f"the database {engine.url!r} has no fits_storage tables: run create_tables"
    return (
        f"the database {engine.url!r} is at schema revision {current}, this code needs {head}: "
        "run create_tables"
    )
