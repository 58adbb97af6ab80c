"""``GET /metrics`` over real HTTP after real worker processes ran, on SQLite and PostgreSQL:
it parses with prometheus-client's own parser and its numbers are the database's."""

from __future__ import annotations

from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.orm import PreviewQueue
from fits_storage.queues import get_queue
from tests.conftest import make_test_config
from tests.processes import start_recording_worker, stop
from tests.test_health import fill_preview_queue
from tests.test_web import ServerThread, free_port

NAMES = [f"N20251123S{i:04d}.fits" for i in range(1, 61)]
BROKEN = NAMES[10:13]
LATER = [f"N20251124S{i:04d}.fits" for i in range(1, 6)]


def run_to_the_end(config: Config, tmp_path: Path, names: list[str], **env: str) -> None:
    workers = [
        start_recording_worker(config, name, "--empty", stderr_to=tmp_path / f"{name}.log", **env)
        for name in names
    ]
    try:
        for name, worker in zip(names, workers, strict=True):
            assert worker.wait(120) in (0, 1), (tmp_path / f"{name}.log").read_text()
    finally:
        for worker in workers:
            stop(worker)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = requests.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_match_the_database_after_real_workers(config: Config, tmp_path: Path) -> None:
    fill_preview_queue(config, NAMES)
    run_to_the_end(config, tmp_path, ["w1", "w2"], TEST_FAIL=",".join(BROKEN))
    queue = get_queue("preview", config)
    engine = make_engine(config.database_url)
    try:
        with make_session_factory(engine)() as session:
            for name in LATER:
                queue.add(session, name, "")
            session.commit()
        run_to_the_end(config, tmp_path, ["w3"], TEST_TRANSIENT="loud")  # every entry retried
        with engine.connect() as conn:
            done = dict(
                conn.execute(text("SELECT worker, count(*) FROM processed GROUP BY worker")).all()
            )
            failed = conn.scalar(
                select(func.count())
                .select_from(PreviewQueue)
                .where(PreviewQueue.status == "failed")
            )
    finally:
        engine.dispose()
    assert sum(done.values()) == len(NAMES) - len(BROKEN) and failed == len(BROKEN)

    with ServerThread(config) as server:
        samples = scrape(server.url)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("fits_storage_database_up") == 1
    assert value("fits_storage_queue_depth", queue="preview") == len(LATER)
    assert value("fits_storage_queue_deferred", queue="preview") == len(LATER)  # backing off
    assert value("fits_storage_queue_failed", queue="preview") == failed
    assert value("fits_storage_queue_in_progress", queue="preview") == 0
    assert value("fits_storage_queue_live_workers", queue="preview") == 0
    assert value("fits_storage_queue_oldest_waiting_seconds", queue="preview") >= 0
    assert value("fits_storage_queue_depth", queue="ingest") == 0

    workers = {f"recording_worker-{n}" for n in ("w1", "w2", "w3")}
    processed = {
        w: value("fits_storage_items_processed_total", queue="preview", worker=w) for w in workers
    }
    assert processed == {w: done.get(w, 0) for w in workers}
    failures = sum(
        value("fits_storage_items_failed_total", queue="preview", worker=w) for w in workers
    )
    assert failures == failed
    worker3 = "recording_worker-w3"
    assert value("fits_storage_items_retried_total", queue="preview", worker=worker3) == len(LATER)
    for worker in workers:
        count = value("fits_storage_processing_seconds_count", queue="preview", worker=worker)
        assert count == processed[worker]
        bucket = {"queue": "preview", "worker": worker, "le": "+Inf"}
        assert value("fits_storage_processing_seconds_bucket", **bucket) == count
        assert value("fits_storage_processing_seconds_sum", queue="preview", worker=worker) >= 0


def test_metrics_report_an_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    with ServerThread(make_test_config(tmp_path, url)) as server:
        samples = scrape(server.url)
    assert samples == {("fits_storage_database_up", ()): 0}


def test_a_worker_run_again_keeps_one_row_and_its_counters_grow(
    config: Config, tmp_path: Path
) -> None:
    """As from cron: each run folds the finished runs' row into its own."""
    fill_preview_queue(config, NAMES[:5])
    run_to_the_end(config, tmp_path, ["w1"])
    engine = make_engine(config.database_url)
    try:
        with make_session_factory(engine)() as session:
            queue = get_queue("preview", config)
            for name in LATER:
                queue.add(session, name, "")
            session.commit()
        run_to_the_end(config, tmp_path, ["w1"])
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT processed, stopped FROM queueworker")).all()
    finally:
        engine.dispose()
    assert len(rows) == 1 and rows[0][1] is not None
    with ServerThread(config) as server:
        samples = scrape(server.url)
    key = (("queue", "preview"), ("worker", "recording_worker-w1"))
    assert samples[("fits_storage_items_processed_total", key)] == 5 + len(LATER)
    assert samples[("fits_storage_processing_seconds_count", key)] == 5 + len(LATER)
