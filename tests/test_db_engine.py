"""The database layer: SQLite settings, and both PostgreSQL drivers admins' URLs may name."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.orm.queues import IngestQueue
from fits_storage.queues import Queue, Worker


def test_sqlite_runs_in_wal_with_full_sync_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()


def test_sqlite_transactions_take_the_write_lock_up_front(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second writer waits at BEGIN instead of failing on lock upgrade."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with engine.connect() as first:
        first.execute(text("SELECT count(*) FROM t"))  # a read, yet the write lock is held
        other = engine.connect().execution_options(sqlite_begin="DEFERRED")
        assert other.execute(text("SELECT count(*) FROM t")).scalar() == 0  # readers still read
        other.close()
        import sqlite3

        raw = sqlite3.connect(tmp_path / "x.db", timeout=0)
        try:
            raw.execute("BEGIN IMMEDIATE")
            raise AssertionError("the write lock was not held by the open transaction")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
        finally:
            raw.close()
    engine.dispose()


def test_psycopg2_urls_still_work(pg_db_url: str) -> None:
    url = pg_db_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    engine = make_engine(url)
    assert engine.dialect.driver == "psycopg2"
    queue = Queue(IngestQueue)
    with make_session_factory(engine)() as session:
        assert queue.add(session, "N20251123S0001.fits")
        session.commit()
        entry = queue.claim(session, Worker("psycopg2"))
        assert entry is not None and queue.complete(session, entry)
        session.commit()
    engine.dispose()


def test_plain_postgresql_url_uses_psycopg3(pg_db_url: str) -> None:
    engine = make_engine(pg_db_url)
    assert engine.dialect.driver == "psycopg"
    engine.dispose()
