"""What ``GET /health`` and ``GET /metrics`` cost with big queues, beside a one-row table.

Run by hand (never a test): ``python benchmarks/monitoring.py [--help]``. On PostgreSQL and
SQLite, the preview queue holds either one waiting entry (the reference) or ``--rows`` waiting
and ``--rows`` failed entries (written with one ``INSERT … SELECT`` each, then vacuumed and
analysed, outside the timing), with four live workers in the registry. Each endpoint is asked
``--repeat`` times through the application (Starlette's test client, no network), and the
median and 90th percentile are printed with the ratio to the one-row table. Target: a
load balancer's probe stays in tens of milliseconds with a million rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt, migrate, percentile, pg_bench_schema, print_table  # noqa: E402
from queue_scale import fill  # noqa: E402

from fits_storage.config import load_config  # noqa: E402
from fits_storage.db.engine import make_engine, make_session_factory  # noqa: E402
from fits_storage.queues import Worker  # noqa: E402
from fits_storage.queues.registry import WorkerStats, register  # noqa: E402
from fits_storage.web import create_app  # noqa: E402

ENDPOINTS = ("/health", "/metrics")


def prepare(url: str, rows: int) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM previewqueue"))
        conn.execute(text("DELETE FROM queueworker"))
        if rows:
            fill(conn, "previewqueue", rows, prefix="N20240101S")
            fill(conn, "previewqueue", rows, prefix="N20230101S", status="failed")
        else:
            fill(conn, "previewqueue", 1, prefix="N20240101S")
    with make_session_factory(engine)() as session:
        for n in range(4):
            register(session, Worker(f"bench-{n}", pid=n), "preview", 5.0, WorkerStats())
        session.commit()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM ANALYZE previewqueue"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def measure(url: str, root: Path, repeat: int) -> dict[str, list[float]]:
    config = load_config(
        environ={"FITS_STORAGE_ROOT": str(root), "FITS_STORAGE_DB_URL": url}, files=[]
    )
    timings: dict[str, list[float]] = {path: [] for path in ENDPOINTS}
    with TestClient(create_app(config)) as client:
        for path in ENDPOINTS:
            client.get(path)  # warm: connection pool, statement caches
            for _ in range(repeat):
                started = time.perf_counter()
                answer = client.get(path)
                timings[path].append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text
    return timings


def run(backend: str, url: str, root: Path, rows: int, repeat: int) -> list[list[str]]:
    results = {}
    for size in (0, rows):
        prepare(url, size)
        results[size] = measure(url, root, repeat)
    table = []
    for path in ENDPOINTS:
        small = statistics.median(results[0][path])
        big = statistics.median(results[rows][path])
        table.append(
            [
                backend,
                path,
                fmt(small, 1),
                fmt(big, 1),
                fmt(percentile(results[rows][path], 90), 1),
                f"{big / small:.2f}",
            ]
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="waiting rows, and failed")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--backends", nargs="+", default=["postgresql", "sqlite"], choices=["postgresql", "sqlite"]
    )
    args = parser.parse_args()
    table: list[list[str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for backend in args.backends:
            if backend == "postgresql":
                with pg_bench_schema() as (url, _schema):
                    table += run(backend, url, root, args.rows, args.repeat)
            else:
                url = migrate(f"sqlite:///{root / 'bench.db'}")
                table += run(backend, url, root, args.rows, args.repeat)
    print_table(
        f"/health and /metrics: 1 row vs {args.rows:,} waiting + {args.rows:,} failed "
        f"(ms, median of {args.repeat})",
        ["backend", "endpoint", "1 row", "big", "big p90", "ratio"],
        table,
    )


if __name__ == "__main__":
    main()
