"""Queue engine throughput and add-to-claim latency, beside a peer library and the bare SQL.

Run by hand (never a test): ``python benchmarks/queue_throughput.py [--help]``. For PostgreSQL
and SQLite, with 1, 2, 4 and 8 worker processes, it prints entries claimed-and-completed per
second measured several ways on the same database, in the same run:

* ``svc``: the real worker loop (``run_queue_service`` → ``QueueLoop``, no-op work, ``--empty``),
  from the moment the already-imported processes are released until the queue is drained;
  ``svc+start`` also counts interpreter start-up and imports; ``svc+w`` is the same with a work
  function that inserts one row through its session, so the completion rides in the work's
  transaction (BEGIN, INSERT, finish, COMMIT) and the next claim follows in autocommit, as they
  do for ingest;
* ``loop``: a tight loop over the same ``Queue`` calls the worker loop makes on a busy queue
  (one claim, then ``complete_and_claim`` per entry), without its logging, heartbeat thread,
  session for the work and signal handling;
* ``peer``: procrastinate (PostgreSQL only) with the same number of worker processes, one job at
  a time each, deleting successful jobs, processing the same number of no-op jobs;
* ``ceil``: the bare claim and complete statements, compiled from ``queues/statements.py``, each
  in its own autocommit transaction: ``pgbench -M prepared -c K -j K`` on PostgreSQL, K plain
  ``sqlite3`` processes with ``BEGIN IMMEDIATE`` on SQLite; ``eng`` runs, the same way, what
  the engine sends per entry on a busy queue: on PostgreSQL the one ``finish_and_claim``
  statement in autocommit, on SQLite one ``BEGIN IMMEDIATE`` transaction of ``complete``,
  ``clear_failures`` (the file's earlier failures, once the fenced delete hit) and
  ``claim_waiting`` (the dead-worker sweep runs at
  most every quarter lease and is left out): ``loop``/``eng`` is what the Python side costs.

Then the latency from an add's commit to its claim, for one idle worker (LISTEN/NOTIFY on
PostgreSQL, polling every ``--sqlite-poll`` seconds on SQLite).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PG_URL,
    child_environ,
    child_ready,
    child_report,
    collect,
    fmt,
    migrate,
    percentile,
    pg_bench_schema,
    print_table,
    ratio,
    release,
    spawn,
    wait_ready,
)

from fits_storage.config import load_config  # noqa: E402
from fits_storage.db.engine import SQLITE_BUSY_TIMEOUT_MS, make_engine, make_session_factory  # noqa: E402
from fits_storage.queues import Entry, Queue, Worker, get_queue  # noqa: E402
from fits_storage.queues import statements as sql  # noqa: E402
from fits_storage.queues.notify import psycopg_conninfo  # noqa: E402

QUEUE = "preview"
COMMAND = "bench_queue_worker"
CHILD_TIMEOUT = 600.0


def entry_name(i: int) -> str:
    """Observatory-style file names, so sort keys look like production ones."""
    return f"N{20250101 + i // 10000:08d}S{i % 10000:04d}.fits"


# -- the database under test ----------------------------------------------------------------


@dataclass
class Backend:
    name: str
    url: str
    root: Path
    log: Path
    engine: Engine
    factory: sessionmaker[Session]
    queue: Queue
    schema: str | None = None
    sqlite_path: Path | None = None

    @property
    def is_pg(self) -> bool:
        return self.schema is not None

    def environ(self, **extra: str) -> dict[str, str]:
        env = child_environ(FITS_STORAGE_DB_URL=self.url, FITS_STORAGE_ROOT=str(self.root))
        env.update(extra)
        return env

    def refill(self, n: int) -> None:
        """Empty the queue table (and the writing work's table), then add ``n`` entries with
        ``add_many`` in one transaction."""
        with self.factory() as session:
            session.execute(text("CREATE TABLE IF NOT EXISTS bench_work (filename VARCHAR(255))"))
            for table in ("previewqueue", "bench_work"):
                session.execute(text(f"{'TRUNCATE' if self.is_pg else 'DELETE FROM'} {table}"))
            added = self.queue.add_many(session, ({"filename": entry_name(i)} for i in range(n)))
            session.commit()
        assert added == n, (added, n)
        self.analyze("previewqueue")

    def analyze(self, table: str) -> None:
        with self.engine.connect() as conn:
            conn.execute(text(f"ANALYZE {table}"))
            conn.commit()

    def remaining(self) -> int:
        return self.count("previewqueue")

    def count(self, table: str) -> int:
        with self.factory() as session:
            return session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


@dataclass
class Run:
    rate: float | None
    with_startup: float | None = None
    startup: float | None = None


def run_children(
    backend: Backend, specs: list[dict[str, Any]], n: int, env: dict[str, str]
) -> tuple[Run, list[dict]]:
    """Start one child per spec, release them together, and time until the last one finishes."""
    spawned = time.time()
    argv = [sys.executable, str(Path(__file__).resolve()), "--child"]
    children = [spawn([*argv, json.dumps(spec)], env, backend.log) for spec in specs]
    wait_ready(children, backend.log)
    ready = time.time()
    start = release(children)
    reports = collect(children, backend.log, CHILD_TIMEOUT)
    finished = max(r["finished"] for r in reports)
    return Run(n / (finished - start), n / (finished - spawned), ready - spawned), reports


# -- our engine: the real worker loop, and the same calls in a tight loop -------------------


def noop_work(session: Session, entry: Entry, context: Any) -> None:
    """The work of a throughput run: nothing."""


def write_work(session: Session, entry: Entry, context: Any) -> None:
    """The work of a ``svc+w`` run: one row written in the work's own transaction."""
    session.execute(text("INSERT INTO bench_work (filename) VALUES (:f)"), {"f": entry.filename})


def record_work(session: Session, entry: Entry, context: Any) -> None:
    """The work of a latency run: tell the parent when the entry reached the work function."""
    print(json.dumps({"f": entry.filename, "t": time.time()}), flush=True)


def child_service(spec: dict[str, Any]) -> None:
    from fits_storage.service.queue_service import run_queue_service

    child_ready()
    argv = ["--name", f"bench{spec['index']}"] + (["--empty"] if spec["empty"] else [])
    work = {"noop": noop_work, "write": write_work, "record": record_work}[spec["work"]]
    rc = run_queue_service(COMMAND, QUEUE, work, description="benchmark worker", argv=argv)
    child_report(finished=time.time(), rc=rc)


def child_loop(spec: dict[str, Any]) -> None:
    engine = make_engine(spec["url"], pre_ping=False)
    factory = make_session_factory(engine)
    queue = get_queue(QUEUE, load_config())
    worker = Worker(f"bench-loop{spec['index']}")
    child_ready()
    done = 0
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            entry = queue.claim(conn, worker)
            while entry is not None:
                completed, entry = queue.complete_and_claim(conn, entry, worker)
                done += completed
    else:
        with factory() as session:
            entry = queue.claim(session, worker)
            session.commit()
            while entry is not None:
                completed, entry = queue.complete_and_claim(session, entry, worker)
                session.commit()
                done += completed
    child_report(finished=time.time(), done=done)
    engine.dispose()


def ours(backend: Backend, k: int, n: int, mode: str) -> Run:
    """Our engine: ``mode`` is ``noop`` or ``write`` (the service) or ``loop``."""
    backend.refill(n)
    if mode == "loop":
        specs = [{"mode": "loop", "index": i, "url": backend.url} for i in range(k)]
    else:
        specs = [{"mode": "service", "index": i, "empty": True, "work": mode} for i in range(k)]
    run, _ = run_children(backend, specs, n, backend.environ())
    left = backend.remaining()
    if left:
        raise RuntimeError(f"{left} entries left on the queue after a run with {k} workers")
    if mode == "write" and backend.count("bench_work") != n:
        raise RuntimeError("the writing work did not write one row per entry")
    return run


# -- the peer: procrastinate ----------------------------------------------------------------


def procrastinate_app(conninfo: str) -> Any:
    import procrastinate

    connector = procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=2)
    app = procrastinate.App(connector=connector)

    @app.task(name="noop")
    async def noop() -> None:
        return None

    return app


def child_procrastinate(spec: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("procrastinate").setLevel(logging.ERROR)
    app = procrastinate_app(spec["conninfo"])
    child_ready()
    with app.open():
        app.run_worker(
            name=f"bench{spec['index']}",
            concurrency=1,
            wait=False,
            delete_jobs="successful",
            install_signal_handlers=False,
            listen_notify=False,
        )
    child_report(finished=time.time())


class Peer:
    """procrastinate in the benchmark schema of the same database."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.conninfo = psycopg_conninfo(backend.url)
        self.app = procrastinate_app(self.conninfo)
        with self.app.open():
            self.app.schema_manager.apply_schema()

    def run(self, k: int, n: int) -> Run:
        with self.backend.engine.begin() as conn:
            conn.execute(text("TRUNCATE procrastinate_jobs CASCADE"))
        with self.app.open():
            task = self.app.tasks["noop"]
            for start in range(0, n, 1000):
                task.batch_defer(*({} for _ in range(start, min(n, start + 1000))))
        self.backend.analyze("procrastinate_jobs")
        specs = [{"mode": "procrastinate", "index": i, "conninfo": self.conninfo} for i in range(k)]
        run, _ = run_children(self.backend, specs, n, self.backend.environ())
        with self.backend.engine.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM procrastinate_jobs WHERE status <> 'succeeded'")
            ).scalar_one()
        if left:
            raise RuntimeError(f"procrastinate left {left} jobs unprocessed")
        return run


# -- the ceiling: the bare statements, outside Python ---------------------------------------


def compiled_sql(statement: Any, values: dict[str, str]) -> str:
    """One of our statements as PostgreSQL text, placeholders replaced by ``values`` (SQL text)
    and the constants SQLAlchemy binds (statuses, LIMIT 1) inlined as literals."""
    compiled = statement.compile(dialect=postgresql.dialect())
    text_ = " ".join(str(compiled).split())
    for name, value in compiled.params.items():
        if name in values:
            literal = values[name]
        elif isinstance(value, str):
            literal = "'" + value.replace("'", "''") + "'"
        else:
            literal = str(value)
        text_ = text_.replace(f"%({name})s", literal)
    if "%(" in text_:
        raise ValueError(f"unbound parameter left in {text_}")
    return text_


def pgbench_script(table: Any, exclusive: tuple[str, ...], full: bool) -> str:
    """One entry as a pgbench script: the bare claim and complete (two transactions), or with
    ``full`` what the engine sends (one ``finish_and_claim`` per entry)."""
    values = {
        "worker": "'pgbench'",
        "host": "'bench'",
        "pid": "0",
        "max_attempts": "5",
        "error": "'abandoned'",
        "fence_id": ":cid",
        "fence_worker": "'pgbench'",
        "fence_attempts": ":cattempts",
        "key_filename": ":cfilename",
        "key_path": ":cpath",
    }

    def render(statement: Any) -> str:
        return compiled_sql(statement, values)

    # ``\gset c`` stores the claimed entry's columns as :cid, :cattempts, :cfilename, :cpath.
    claim = render(sql.claim_waiting(table, exclusive, True))
    claim = f"WITH c AS ({claim}) SELECT id, attempts, filename, path FROM c \\gset c"
    if not full:
        return f"{claim}\n{render(sql.complete(table))};\n"
    # The engine on a busy queue: one statement finishes the entry in hand and claims the next
    # (a client's first transaction, holding nothing yet, only claims).
    chained = render(sql.finish_and_claim(table, ("filename", "path"), exclusive)) + " \\gset c"
    return f"\\if :cid = 0\n{claim}\n\\else\n{chained}\n\\endif\n"


def pgbench(backend: Backend, k: int, n: int, full: bool) -> Run:
    """Transactions (= entries claimed and completed) per second of the bare statements."""
    per_client = max(1, n // k)
    backend.refill(per_client * k + k)
    script = backend.root / f"claim_complete_{'full' if full else 'bare'}.sql"
    script.write_text(pgbench_script(backend.queue.table, backend.queue.exclusive, full))
    url = make_url(PG_URL)
    env = dict(os.environ, PGOPTIONS=f"-c search_path={backend.schema}")
    for var, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[var] = str(value)
    argv = ["pgbench", "-n", "-M", "prepared", "-c", str(k), "-j", str(k)]
    argv += ["-t", str(per_client), "-f", str(script), "-D", "cid=0"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    if done.returncode != 0 or not match or "aborted" in done.stderr:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    return Run(float(match.group(1)))


def child_sqlite_bare(spec: dict[str, Any]) -> None:
    """The statements through the plain sqlite3 driver: the engine's settings, no SQLAlchemy.

    Bare: BEGIN IMMEDIATE, claim, COMMIT; BEGIN IMMEDIATE, complete, COMMIT. ``full``, as the
    engine on a busy queue: one claim, then per entry BEGIN IMMEDIATE, finish, claim, COMMIT.
    """
    queue = get_queue(QUEUE, load_config())
    table, dialect = queue.table, sqlite.dialect(paramstyle="named")

    def render(statement: Any) -> tuple[str, dict[str, Any]]:
        compiled = statement.compile(dialect=dialect)
        return str(compiled), {k: v for k, v in compiled.params.items() if v is not None}

    claim_sql, claim_consts = render(sql.claim_waiting(table, queue.exclusive, False))
    finish_sql, finish_consts = render(sql.complete(table))
    clear_sql, clear_consts = render(sql.clear_failures(table, ("filename", "path")))
    conn = sqlite3.connect(spec["path"], timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    conn.isolation_level = None
    for pragma in (
        "journal_mode=WAL",
        f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "synchronous=FULL",
    ):
        conn.execute(f"PRAGMA {pragma}")
    worker, pid = f"bare{spec['index']}", os.getpid()

    def claim() -> dict[str, Any] | None:
        params = {"worker": worker, "host": "bench", "pid": pid}
        cursor = conn.execute(claim_sql, {**claim_consts, **params})
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cursor.description], row, strict=True))

    def finish(got: dict[str, Any]) -> None:
        fence = {
            "fence_id": got["id"],
            "fence_worker": worker,
            "fence_attempts": got["attempts"],
            "key_filename": got["filename"],
            "key_path": got["path"],
        }
        if conn.execute(finish_sql, {**finish_consts, **fence}).rowcount == 1 and spec["full"]:
            conn.execute(clear_sql, {**clear_consts, **fence})

    child_ready()
    done = 0
    conn.execute("BEGIN IMMEDIATE")
    held = claim()
    conn.execute("COMMIT")
    while held is not None:
        conn.execute("BEGIN IMMEDIATE")
        finish(held)
        if spec["full"]:
            held = claim()
        conn.execute("COMMIT")
        if not spec["full"]:
            conn.execute("BEGIN IMMEDIATE")
            held = claim()
            conn.execute("COMMIT")
        done += 1
    child_report(finished=time.time(), done=done)


def sqlite_bare(backend: Backend, k: int, n: int, full: bool) -> Run:
    backend.refill(n)
    specs = [
        {"mode": "sqlite-bare", "index": i, "path": str(backend.sqlite_path), "full": full}
        for i in range(k)
    ]
    run, reports = run_children(backend, specs, n, backend.environ())
    if sum(r["done"] for r in reports) != n:
        raise RuntimeError("the bare SQLite run did not process every entry exactly once")
    return Run(run.rate)


# -- latency --------------------------------------------------------------------------------


def latency(backend: Backend, adds: int, poll: float, gap: float) -> list[float]:
    """Seconds from an add's commit to its claim, one add at a time, the worker idle before."""
    with backend.factory() as session:
        session.execute(text(f"{'TRUNCATE' if backend.is_pg else 'DELETE FROM'} previewqueue"))
        session.commit()
    env = backend.environ(FITS_STORAGE_QUEUE_POLL_SECONDS=str(poll))
    spec = {"mode": "service", "index": "idle", "empty": False, "work": "record"}
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    child = spawn(argv, env, backend.log)
    samples: list[float] = []
    try:
        wait_ready([child], backend.log)
        release([child])
        time.sleep(1.0 + poll)  # connected, LISTENing, found nothing, waiting
        assert child.stdout is not None
        for i in range(adds):
            name = f"L{i:06d}.fits"
            with backend.factory() as session:
                backend.queue.add(session, name)
                session.commit()
            added = time.time()
            ready, _, _ = select.select([child.stdout], [], [], 30 + poll)
            if not ready:
                raise RuntimeError(f"the idle worker never claimed {name} (see {backend.log})")
            claimed = json.loads(child.stdout.readline())
            assert claimed["f"] == name, claimed
            samples.append(claimed["t"] - added)
            time.sleep(gap + random.uniform(0, gap))
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=poll + 15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return samples


# -- the run --------------------------------------------------------------------------------


@contextmanager
def open_backend(name: str, workdir: Path) -> Iterator[Backend]:
    """A scratch PostgreSQL schema or SQLite file at the current schema, removed afterwards."""
    root = workdir / name
    root.mkdir(parents=True)
    with pg_bench_schema() if name == "postgresql" else nullcontext() as made:
        if made is not None:
            url, schema, path = made[0], made[1], None
        else:
            path = root / "bench.db"
            url, schema = migrate(f"sqlite:///{path}"), None
        engine = make_engine(url)
        config = load_config(environ=child_environ(FITS_STORAGE_DB_URL=url), files=[])
        backend = Backend(
            name,
            url,
            root,
            root / "children.log",
            engine,
            make_session_factory(engine),
            get_queue(QUEUE, config.replace(storage_root=root)),
            schema,
            path,
        )
        try:
            yield backend
        finally:
            engine.dispose()


def best_of(repeat: int, measure: Callable[[], Run]) -> Run:
    """The median run by rate (of ``repeat`` runs)."""
    runs = sorted((measure() for _ in range(repeat)), key=lambda r: r.rate or 0.0)
    return runs[len(runs) // 2]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def throughput_table(backend: Backend, args: argparse.Namespace) -> dict[int, dict[str, Run]]:
    peer = Peer(backend) if backend.is_pg and not args.no_peer else None
    n = args.entries if backend.is_pg else args.sqlite_entries
    results: dict[int, dict[str, Run]] = {}
    for k in args.workers:
        row: dict[str, Run] = {}
        measures: dict[str, Callable[[], Run]] = {
            "svc": partial(ours, backend, k, n, "noop"),
            "svc+w": partial(ours, backend, k, n, "write"),
            "loop": partial(ours, backend, k, n, "loop"),
        }
        if peer is not None:
            measures["peer"] = partial(peer.run, k, n)
        bare = pgbench if backend.is_pg else sqlite_bare
        measures["ceil"] = partial(bare, backend, k, n, full=False)
        measures["eng"] = partial(bare, backend, k, n, full=True)
        for what, measure in measures.items():
            row[what] = best_of(args.repeat, measure)
            progress(f"  {backend.name} K={k} {what}: {fmt(row[what].rate)}/s")
        results[k] = row
    none = Run(None)
    rows = []
    for k, row in results.items():
        svc, write, loop = row["svc"], row["svc+w"], row["loop"]
        peer_run, ceil, eng = row.get("peer", none), row["ceil"], row["eng"]
        rows.append(
            [
                str(k),
                fmt(svc.rate),
                fmt(svc.with_startup),
                fmt(write.rate),
                fmt(loop.rate),
                fmt(peer_run.rate),
                ratio(svc.rate, peer_run.rate),
                ratio(loop.rate, peer_run.rate),
                fmt(ceil.rate),
                ratio(svc.rate, ceil.rate),
                ratio(write.rate, ceil.rate),
                ratio(loop.rate, ceil.rate),
                fmt(eng.rate),
                ratio(loop.rate, eng.rate),
            ]
        )
    headers = ["K", "svc/s", "svc+start/s", "svc+w/s", "loop/s", "peer/s", "svc/peer"]
    headers += ["loop/peer", "ceil/s", "svc/ceil", "svc+w/ceil", "loop/ceil", "eng/s", "loop/eng"]
    peer_name = "procrastinate" if peer is not None else "none"
    print_table(
        f"{backend.name}: entries claimed and completed per second, {n} entries, "
        f"K worker processes (peer: {peer_name}; ceil/eng: "
        f"{'pgbench -M prepared' if backend.is_pg else 'plain sqlite3'})",
        headers,
        rows,
    )
    startups = [r["svc"].startup for r in results.values() if r["svc"].startup]
    print(
        f"  process start-up (spawn to imported, not in svc/s): "
        f"{statistics.median(startups):.2f} s median"
    )
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends", default="postgresql,sqlite", help="comma-separated (default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        default="1,2,4,8",
        type=lambda s: [int(x) for x in s.split(",")],
        help="worker process counts (default: %(default)s)",
    )
    parser.add_argument(
        "--entries",
        type=int,
        default=2000,
        help="entries per PostgreSQL run (default: %(default)s)",
    )
    parser.add_argument(
        "--sqlite-entries",
        type=int,
        default=1000,
        help="entries per SQLite run (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per figure, median kept (default: %(default)s)"
    )
    parser.add_argument(
        "--latency-adds",
        type=int,
        default=200,
        help="adds timed per backend (default: %(default)s)",
    )
    parser.add_argument(
        "--latency-gap",
        type=float,
        default=0.02,
        help="seconds between a claim and the next add, plus up to as much again at random "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--sqlite-poll",
        type=float,
        default=0.1,
        help="queue_poll_seconds of the SQLite latency run; PostgreSQL keeps the default 2 s "
        "and is woken by NOTIFY (default: %(default)s)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip procrastinate")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch directory (child logs) afterwards"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("procrastinate").setLevel(logging.ERROR)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="fits_storage_bench_"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"queue_throughput: {os.cpu_count()} CPUs, load average {load} at start; "
        f"PostgreSQL {PG_URL.split('@')[-1]}; SQLite {sqlite3.sqlite_version}; "
        f"scratch {workdir}"
    )
    targets: list[tuple[str, bool]] = []
    latencies: list[list[str]] = []
    try:
        for name in backends:
            progress(f"{name}:")
            with open_backend(name, workdir) as backend:
                results = throughput_table(backend, args)
                poll = 2.0 if backend.is_pg else args.sqlite_poll
                gap = args.latency_gap if backend.is_pg else max(args.latency_gap, poll)
                samples = latency(backend, args.latency_adds, poll, gap)
                ms = [s * 1000 for s in samples]
                wake = "LISTEN/NOTIFY" if backend.is_pg else f"poll every {poll:g} s"
                latencies.append(
                    [
                        name,
                        wake,
                        str(len(ms)),
                        fmt(percentile(ms, 50), 1),
                        fmt(percentile(ms, 99), 1),
                        fmt(max(ms), 1),
                    ]
                )
                if backend.is_pg:
                    peers = [(r["svc"].rate or 0, r.get("peer")) for r in results.values()]
                    if all(p is not None for _, p in peers):
                        ahead = all(s > (p.rate or 0) for s, p in peers if p is not None)
                        targets.append(("ahead of procrastinate at every K (svc)", ahead))
                    if 4 in results:
                        four = results[4]
                        half = (four["svc"].rate or 0) >= 0.5 * (four["ceil"].rate or 1)
                        targets.append(("svc >= 1/2 of the pgbench ceiling at K=4", half))
                    targets.append(("add-to-claim p50 < 20 ms", percentile(ms, 50) < 20))
        print_table(
            "add-to-claim latency, one idle worker (claim time - add commit time)",
            ["backend", "wake-up", "adds", "p50 ms", "p99 ms", "max ms"],
            latencies,
        )
        if targets:
            print("\ntargets (PostgreSQL):")
            for what, met in targets:
                print(f"  {'met   ' if met else 'MISSED'}  {what}")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\nload average at the end: {load} (other work on the machine skews every figure)")
    finally:
        if args.keep:
            print(f"\nscratch kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def child(spec: dict[str, Any]) -> None:
    modes: dict[str, Callable[[dict[str, Any]], None]] = {
        "service": child_service,
        "loop": child_loop,
        "procrastinate": child_procrastinate,
        "sqlite-bare": child_sqlite_bare,
    }
    modes[spec["mode"]](spec)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
