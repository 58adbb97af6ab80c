"""Helpers shared by the benchmark scripts: scratch databases, child processes, tables.

Benchmarks run by hand and print tables; they never assert timings (docs/architecture.md §7). Every
PostgreSQL run happens in a schema of its own, created at the start and dropped at the end, so a
benchmark never touches other data in the same database.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text

from fits_storage.db.engine import make_engine
from fits_storage.db.schema import create_tables

PG_URL = os.environ.get(
    "FITS_STORAGE_BENCH_PG_URL",
    os.environ.get("FITS_STORAGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)


def pg_schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with every connection's ``search_path`` set to ``schema``."""
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}"


@contextmanager
def pg_bench_schema(base_url: str = PG_URL) -> Iterator[tuple[str, str]]:
    """A fresh schema at the current fits_storage schema; yields (url, schema), then drops it."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        url = pg_schema_url(base_url, schema)
        migrate(url)
        yield url, schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def migrate(url: str) -> str:
    engine = make_engine(url)
    create_tables(engine)
    engine.dispose()
    return url


def child_environ(**extra: str) -> dict[str, str]:
    """The parent's environment without any fits_storage settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITS_STORAGE_")}
    env["FITS_STORAGE_CONFIG"] = ""
    env.update(extra)
    return env


# -- child processes started together -------------------------------------------------------
#
# A child imports what it needs, prints "ready", waits for a line on stdin, does its run and
# prints one JSON line. The parent times from the moment it releases them all, so interpreter
# start-up and imports are not counted (they are reported separately).


def spawn(argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )


def wait_ready(children: Sequence[subprocess.Popen], log: Path) -> None:
    for child in children:
        line = child.stdout.readline() if child.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"a child did not start ({line!r}):\n{tail(log)}")


def release(children: Sequence[subprocess.Popen]) -> float:
    """Let every child go; returns the wall-clock start time."""
    start = time.time()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    return start


def collect(children: Sequence[subprocess.Popen], log: Path, timeout: float) -> list[dict]:
    """Each child's JSON report (its last line on stdout)."""
    reports = []
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            out, _ = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise RuntimeError(f"a child ran over {timeout:.0f}s:\n{tail(log)}") from None
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if child.returncode != 0 or not lines:
            raise RuntimeError(f"a child failed, exit {child.returncode}:\n{tail(log)}")
        reports.append(json.loads(lines[-1]))
    return reports


def tail(log: Path, lines: int = 15) -> str:
    """The end of the children's log, for an error message."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


def child_ready() -> None:
    """In a child: tell the parent we are loaded, and wait to be released."""
    print("ready", flush=True)
    sys.stdin.readline()


def child_report(**figures: Any) -> None:
    print(json.dumps(figures), flush=True)


# -- figures and tables ---------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return "n/a"
    return f"{ours / theirs:.2f}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
