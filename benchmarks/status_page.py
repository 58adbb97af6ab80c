"""What ``GET /queuestatus/json`` costs with a million waiting and a million failed entries,
beside a queue of one entry.

Run by hand (never a test): ``python benchmarks/status_page.py [--help]``. On PostgreSQL, the
preview queue holds first one waiting entry, then ``--rows`` waiting and ``--rows`` failed ones
(written with one ``INSERT … SELECT`` each, then vacuumed and analysed, outside the timing).
The application is served by uvicorn on loopback and asked by a logged-in client, as the page
and scripts ask it; the median of ``--requests`` requests is reported, with the time of the
grouped count the status page used before (one scan of the table) beside it.

Target: at most 50 ms, and at most 3 times the one-entry queue.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import fmt, pg_bench_schema, print_table  # noqa: E402

from fits_storage.config import load_config  # noqa: E402
from fits_storage.db.engine import make_engine, make_session_factory  # noqa: E402
from fits_storage.orm import PreviewQueue  # noqa: E402
from fits_storage.queues import get_queue  # noqa: E402
from fits_storage.staff.accounts import add_user  # noqa: E402
from tests.test_web import ServerThread  # noqa: E402

USER, PASSWORD = "bench", "benchmark password"


def fill(url: str, rows: int) -> None:
    engine = make_engine(url)
    values = (
        "'N' || n || '.fits', '', 'N' || lpad(n::text, 9, '0'), '{status}', "
        "CURRENT_TIMESTAMP, {failed_at}, 0, {error}"
    )
    columns = "filename, path, sortkey, status, added, failed_at, attempts, error"
    with engine.begin() as conn:
        for status, failed_at, error in (
            ("waiting", "NULL", "NULL"),
            ("failed", "CURRENT_TIMESTAMP", "'ValueError: bad header'"),
        ):
            conn.execute(
                text(
                    f"INSERT INTO previewqueue ({columns}) SELECT "
                    + values.format(status=status, failed_at=failed_at, error=error)
                    + f" FROM generate_series(1, {rows}) AS n"
                )
            )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("VACUUM ANALYZE previewqueue"))
    engine.dispose()


def old_count_ms(url: str) -> float:
    """The status page's count before: one grouped scan of the whole table."""
    engine = make_engine(url)
    table = PreviewQueue.__table__
    statement = select(table.c.status, func.count(), func.min(table.c.added)).group_by(
        table.c.status
    )
    with engine.connect() as conn:
        conn.execute(statement).all()
        started = time.perf_counter()
        for _ in range(5):
            conn.execute(statement).all()
    engine.dispose()
    return (time.perf_counter() - started) / 5 * 1000


def measure(url: str, root: Path, requests_count: int) -> tuple[float, float, float, dict]:
    """Minimum, median and 90th percentile ms of ``/queuestatus/json`` (the minimum is the
    figure least disturbed by other load on the host), and the preview tab's counts."""
    config = load_config(
        environ={"FITS_STORAGE_ROOT": str(root), "FITS_STORAGE_DB_URL": url}, files=[]
    )
    with ServerThread(config) as server:
        client = requests.Session()
        answer = client.post(f"{server.url}/login", data={"username": USER, "password": PASSWORD})
        answer.raise_for_status()
        for _ in range(3):  # warm caches and the connection pool
            client.get(f"{server.url}/queuestatus/json").raise_for_status()
        times = []
        for _ in range(requests_count):
            started = time.perf_counter()
            answer = client.get(f"{server.url}/queuestatus/json")
            times.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    counts = answer.json()["queues"]["preview"]["counts"]
    return min(times), statistics.median(times), statistics.quantiles(times, n=10)[-1], counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="waiting and failed rows")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per case")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp, pg_bench_schema() as (url, _schema):
        engine = make_engine(url)
        with make_session_factory(engine).begin() as session:
            add_user(session, USER, PASSWORD)
            config = load_config(environ={"FITS_STORAGE_ROOT": tmp}, files=[])
            get_queue("preview", config).add(session, "N20251123S0001.fits")
        engine.dispose()
        small = measure(url, Path(tmp), args.requests)
        results.append(("1 waiting", small, old_count_ms(url)))
        started = time.perf_counter()
        fill(url, args.rows)
        print(f"wrote {2 * args.rows:,} rows in {time.perf_counter() - started:.0f} s")
        big = measure(url, Path(tmp), args.requests)
        results.append((f"{args.rows:,} waiting + {args.rows:,} failed", big, old_count_ms(url)))
    reference = results[0][1][1]
    rows = [
        [
            case,
            fmt(least, 1),
            fmt(median, 1),
            fmt(p90, 1),
            f"{median / reference:.2f}",
            f"{counts['text']['waiting']} / {counts['text']['failed']}",
            fmt(old, 1),
        ]
        for case, (least, median, p90, counts), old in results
    ]
    print_table(
        "GET /queuestatus/json on PostgreSQL (uvicorn on loopback, logged-in client)",
        [
            "preview queue",
            "min ms",
            "median ms",
            "p90 ms",
            "ratio",
            "shown waiting / failed",
            "old count ms",
        ],
        rows,
    )
    print("\ntarget: median at most 50 ms and ratio at most 3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
