"""Bring a database to the current schema with the Alembic migrations shipped in the package.

Every command checks the schema as it starts (:func:`schema_problem`). That check reads the
``alembic_version`` table and the migration scripts' revision lines itself: importing Alembic
and loading its scripts cost about 0.15 s at each start of a worker or cron job. Alembic is
imported only to migrate (and when the scripts' lines cannot be read simply).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"^revision\s*=\s*[\"']([^\"']+)[\"']\s*$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(?:[\"']([^\"']+)[\"']|None)\s*$", re.MULTILINE)


def alembic_config(connection=None) -> AlembicConfig:  # type: ignore[no-untyped-def]
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: no fits_storage tables), as Alembic records it."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) > 1:
        raise RuntimeError(f"the database records several schema revisions: {sorted(versions)}")
    return versions[0] if versions else None


def head_revision() -> str | None:
    """The newest migration's revision, from the scripts' ``revision`` and ``down_revision``
    lines; Alembic decides if those do not name exactly one head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return _alembic_head()
        revisions.add(revision[1])
        if down[1] is not None:
            parents.add(down[1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else _alembic_head()


def _alembic_head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def create_tables(engine: Engine) -> tuple[str | None, str | None]:
    """Upgrade to the newest schema; harmless when already there. Returns (before, after)."""
    from alembic import command

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
