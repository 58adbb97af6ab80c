"""One engine and session factory for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` and a ``busy_timeout``; every transaction
starts with an explicit ``BEGIN IMMEDIATE`` so that a reader never has to upgrade to a writer
(which SQLite refuses with "database is locked" regardless of the timeout). A connection may ask
for a plain deferred transaction with the execution option ``sqlite_begin="DEFERRED"`` (the
status page does: it only reads).

A PostgreSQL engine may be made with ``synchronous_commit=False`` for a worker whose every write
can be redone from the files (ingest, previews, the calibration cache): its commits then return
before the WAL reaches the disk. A database crash can lose the last fraction of a second of
them, but never half of one, and the queue hands out again any entry whose completion was lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    pre_ping: bool = True,
    echo: bool = False,
    synchronous_commit: bool = True,
    generic_plans: bool = False,
) -> Engine:
    """Create the engine for ``url`` with the settings this system relies on.

    ``pre_ping=False`` saves a round trip per checkout for callers that handle a lost
    connection themselves (the worker loop retries with backoff). ``synchronous_commit=False``
    (PostgreSQL; SQLite ignores it): commits do not wait for the WAL flush, which costs a
    disk sync each (0.6 ms on an idle disk, several on a busy one). ``generic_plans=True``
    (PostgreSQL): a statement the driver has prepared (run five times on one connection) is
    planned once, not at every execution; for a queue worker's few fixed statements PostgreSQL
    otherwise kept planning each one afresh (0.6-0.9 ms of the 1.5 ms of ingest's write).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        _install_sqlite_hooks(engine)
        return engine
    settings = [] if synchronous_commit else ["-c synchronous_commit=off"]
    if generic_plans:
        settings.append("-c plan_cache_mode=force_generic_plan")
    connect_args = {}
    if settings:  # added to the URL's own options (a search_path, say)
        given = parsed.query.get("options", "")
        given = " ".join(given) if isinstance(given, tuple) else given
        connect_args["options"] = " ".join([given, *settings]).strip()
    return create_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success and rolled back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
