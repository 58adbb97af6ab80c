"""PostgreSQL: the queue's statements keep their partial indexes under a cached plan.

psycopg prepares a statement the fifth time a connection runs it, and the server then caches
one generic plan for it. A generic plan can use a partial index only if the index's predicate
(``status = 'waiting'``) is written in the statement, not bound as a parameter; a bound status
makes the server re-plan every claim, or fall back to scanning every finished and failed row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from fits_storage.db.engine import make_engine
from fits_storage.orm.queues import IngestQueue
from fits_storage.queues import Queue
from fits_storage.queues import statements as sql
from fits_storage.queues.notify import psycopg_conninfo

TABLE = IngestQueue.__table__


@pytest.fixture
def pg_engine(pg_db_url: str) -> Iterator[Engine]:
    """An ingest queue of 3,000 entries, most of them failed, analysed."""
    engine = make_engine(pg_db_url)
    with Session(engine) as session:
        Queue(IngestQueue).add_many(
            session, [{"filename": f"N20251123S{i:04d}.fits"} for i in range(3000)]
        )
        session.execute(text("UPDATE ingestqueue SET status = 'failed' WHERE id % 30 <> 0"))
        session.commit()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE ingestqueue"))
    yield engine
    engine.dispose()


def generic_plan(url: str, statement, values: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    """EXPLAIN of ``statement`` as a prepared statement forced onto its generic plan."""
    compiled = statement.compile(dialect=postgresql.dialect())
    names: list[str] = []

    def placeholder(match: re.Match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    body = re.sub(r"%\((\w+)\)s", placeholder, str(compiled))
    arguments = ", ".join(values.get(name, "NULL") for name in names)
    with psycopg.connect(psycopg_conninfo(url), autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE claim AS {body}")
        rows = conn.execute(f"EXPLAIN EXECUTE claim({arguments})").fetchall()
    return "\n".join(row[0] for row in rows)


def test_claim_uses_the_waiting_index_under_a_generic_plan(
    pg_engine: Engine, pg_db_url: str
) -> None:
    values = {"worker": "'w'", "host": "'h'", "pid": "1"}
    plan = generic_plan(pg_db_url, sql.claim_waiting(TABLE, ("filename",), True), values)
    assert "ix_ingestqueue_claim" in plan, plan
    assert "Seq Scan on ingestqueue q" not in plan, plan


def test_finish_and_claim_uses_the_indexes_under_a_generic_plan(
    pg_engine: Engine, pg_db_url: str
) -> None:
    values = {
        "worker": "'w'",
        "host": "'h'",
        "pid": "1",
        "fence_id": "1",
        "fence_worker": "'w'",
        "fence_attempts": "1",
        "key_filename": "'x'",
        "key_path": "''",
    }
    statement = sql.finish_and_claim(TABLE, ("filename", "path"), ("filename",))
    plan = generic_plan(pg_db_url, statement, values)
    assert "ix_ingestqueue_claim" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_claim_never_reads_deferred_entries(pg_engine: Engine) -> None:
    """2,000 deferred entries at the head of the sort order (a destination that is down):
    the claim's index holds only ready entries, so it reads one row, not 2,000."""
    with Session(pg_engine) as session:
        Queue(IngestQueue).add_many(
            session, [{"filename": f"N20991231S{i:04d}.fits"} for i in range(2000)]
        )
        session.execute(
            text(
                "UPDATE ingestqueue SET after = now() + interval '1 hour' "
                "WHERE filename LIKE 'N2099%'"
            )
        )
        session.commit()
    with pg_engine.begin() as conn:
        conn.execute(text("ANALYZE ingestqueue"))
        statement = sql.claim_waiting(TABLE, ("filename",), True)
        compiled = statement.compile(dialect=postgresql.dialect())
        plan = conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}",
            {"worker": "w", "host": "h", "pid": 1},
        ).scalar()
        conn.rollback()
    scans = list(_index_scans(plan[0]["Plan"]))
    assert scans and all(s["Index Name"] == "ix_ingestqueue_claim" for s in scans), plan
    assert sum(s["Actual Rows"] + s.get("Rows Removed by Filter", 0) for s in scans) <= 2, plan


def _index_scans(node: dict) -> Iterator[dict]:
    if node.get("Relation Name") == "ingestqueue" and node.get("Alias") == "q":
        yield node
    for child in node.get("Plans", []):
        yield from _index_scans(child)
