"""What a claim and completion cost when the queue table is big, beside a near-empty table.

Run by hand (never a test): ``python benchmarks/queue_scale.py [--help]``. On PostgreSQL and
SQLite, one worker claims and completes ``--entries`` ready entries the way a busy worker loop
does (PostgreSQL: ``complete_and_claim`` on an autocommit connection, one statement per entry;
SQLite: the same in one ``BEGIN IMMEDIATE`` transaction per entry) in tables that also hold:

* nothing else (the reference every ratio is taken against);
* ``--big`` waiting entries (older, so behind the measured ones) and ``--big`` failed entries;
* ``--deferred`` deferred entries at the head of the sort order (their ``after`` an hour away);
* ``--down`` export entries for a destination that is down, at the head of the sort order, in
  the export queue: the first claim meets one and, as the exporter does, retries it with
  ``alike=("destination",)``, which parks the whole backlog in one statement (and on PostgreSQL,
  as the worker loop does, vacuums the table after it). The time of that
  statement is counted in the per-entry figure and also shown on its own, with the ratio
  the claims and completions alone reach (``ratio w/o park``).

It prints milliseconds per entry and the ratio to the near-empty table. Target: every ratio at
most 2. Background rows are written with one ``INSERT … SELECT`` each, then vacuumed and analysed,
outside the timing; each scenario starts from an empty table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt, migrate, pg_bench_schema, print_table  # noqa: E402

from fits_storage.db.engine import make_engine  # noqa: E402
from fits_storage.orm.queues import ExportQueue, IngestQueue  # noqa: E402
from fits_storage.queues import Queue, Worker  # noqa: E402

WORKER = Worker("bench-scale")
UP, DOWN = "https://up.example.org", "https://down.example.org"


def series(dialect: str, count: int) -> str:
    """A ``SELECT`` of ``n`` = 1..count, for one ``INSERT … SELECT`` of background rows."""
    if dialect == "postgresql":
        return f"SELECT n FROM generate_series(1, {count}) AS n"
    return (
        f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) "
        "SELECT n FROM s"
    )


def fill(
    conn: Connection,
    table: str,
    count: int,
    *,
    prefix: str,
    status: str = "waiting",
    after: str = "NULL",
    destination: str | None = None,
) -> None:
    """``count`` rows named ``<prefix><n>.fits``; the prefix decides where they sort."""
    if not count:
        return
    dialect = conn.dialect.name
    name = f"'{prefix}' || n || '.fits'"
    columns = "filename, path, sortkey, status, added, after, attempts"
    values = f"{name}, '', {name}, '{status}', CURRENT_TIMESTAMP, {after}, 0"
    if table == "ingestqueue":
        columns += ", force, force_md5"
        values += ", false, false"
    if destination is not None:
        columns += ", destination"
        values += f", '{destination}'"
    conn.execute(
        text(f"INSERT INTO {table} ({columns}) SELECT {values} FROM ({series(dialect, count)}) s")
    )


def later(dialect: str) -> str:
    return "now() + interval '1 hour'" if dialect == "postgresql" else "datetime('now', '+1 hour')"


@contextmanager
def executor(engine: Engine) -> Iterator[tuple[Connection | Session, Callable[[], None]]]:
    """What a busy worker loop claims and completes with, and how it ends each transaction."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn, lambda: None
    else:
        with Session(engine) as session:
            yield session, session.commit


def drain(engine: Engine, queue: Queue, entries: int) -> tuple[float, float]:
    """Seconds per entry to claim and complete ``entries`` ready entries; and the seconds the
    one parking retry took (0 when no entry of the down destination was met)."""
    parked = 0.0
    done = 0
    with executor(engine) as (ex, commit):
        started = time.perf_counter()
        entry = queue.claim(ex, WORKER)
        commit()
        while entry is not None and done < entries:
            if entry.row.get("destination") == DOWN:
                began = time.perf_counter()
                with Session(engine) as session:
                    queue.retry(
                        session, entry, "down", delay=3600, counts=False, alike=("destination",)
                    )
                    session.commit()
                if isinstance(ex, Connection):  # as the worker loop does on PostgreSQL
                    queue.reclaim_after_parking(ex)
                parked += time.perf_counter() - began
                entry = queue.claim(ex, WORKER)
                commit()
                continue
            completed, entry = queue.complete_and_claim(ex, entry, WORKER)
            commit()
            done += completed
        elapsed = time.perf_counter() - started
    if done < entries:
        raise RuntimeError(f"only {done} of {entries} entries were claimed")
    return elapsed / done, parked


def scenario(
    engine: Engine, name: str, entries: int, sizes: argparse.Namespace
) -> tuple[float, float]:
    model = ExportQueue if name == "down" else IngestQueue
    table = model.__table__.name
    queue = Queue(model, lease_seconds=3600)
    dialect = engine.dialect.name
    with engine.begin() as conn:
        # TRUNCATE, not DELETE: a big scenario's dead rows (and the autovacuum they set off)
        # must not weigh on the next one.
        empty = "TRUNCATE" if dialect == "postgresql" else "DELETE FROM"
        conn.execute(text(f"{empty} {table}"))
        # The measured entries: N2025…, ready, behind anything placed at the head (N2099…).
        fill(conn, table, entries, prefix="N20251123S", destination=UP if name == "down" else None)
        if name == "big":
            fill(conn, table, sizes.big, prefix="N20000101S")
            fill(conn, table, sizes.big, prefix="N20000102S", status="failed")
        elif name == "deferred":
            fill(conn, table, sizes.deferred, prefix="N20991231S", after=later(dialect))
        elif name == "down":
            fill(conn, table, sizes.down, prefix="N20991231S", destination=DOWN)
        if dialect == "sqlite":
            conn.execute(text(f"ANALYZE {table}"))
    if dialect == "postgresql":
        with engine.connect() as conn:  # VACUUM runs outside a transaction
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f"VACUUM ANALYZE {table}"))
            conn.execute(text("CHECKPOINT"))  # the fill's writes flushed before the timing
    return drain(engine, queue, entries)


def run_backend(engine: Engine, sizes: argparse.Namespace) -> list[list[str]]:
    label = engine.dialect.name
    names = {  # the biggest last: the writes it leaves behind would slow the others
        "empty": "near-empty table",
        "deferred": f"{sizes.deferred:,} deferred at the head",
        "down": f"destination down, {sizes.down:,} export entries behind it",
        "big": f"{sizes.big:,} waiting + {sizes.big:,} failed",
    }
    rows: list[list[str]] = []
    reference = None
    for key, title in names.items():
        per_entry, parked = scenario(engine, key, sizes.entries, sizes)
        reference = reference or per_entry
        without_park = per_entry - parked / sizes.entries
        rows.append(
            [
                label,
                title,
                fmt(per_entry * 1000, 3),
                f"{per_entry / reference:.2f}",
                fmt(parked * 1000, 1) if key == "down" else "",
                f"{without_park / reference:.2f}" if key == "down" else "",
            ]
        )
        print(f"  {label}: {title}: {per_entry * 1000:.3f} ms/entry", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument(
        "--entries", type=int, default=5000, help="entries claimed and completed per run"
    )
    parser.add_argument(
        "--big", type=int, default=1_000_000, help="waiting and failed background rows, each"
    )
    parser.add_argument("--deferred", type=int, default=50_000)
    parser.add_argument("--down", type=int, default=100_000)
    sizes = parser.parse_args()
    rows: list[list[str]] = []
    for backend in sizes.backends.split(","):
        if backend == "postgresql":
            with pg_bench_schema() as (url, _schema):
                engine = make_engine(url, pre_ping=False)
                rows += run_backend(engine, sizes)
                engine.dispose()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                engine = make_engine(migrate(f"sqlite:///{Path(tmp) / 'scale.db'}"), pre_ping=False)
                rows += run_backend(engine, sizes)
                engine.dispose()
    print_table(
        f"claim + complete per entry ({sizes.entries:,} entries each), ratio to the near-empty "
        "table (target: at most 2)",
        ["db", "table holds", "ms/entry", "ratio", "park ms", "ratio w/o park"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
