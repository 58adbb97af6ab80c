"""``GET /health`` over real HTTP, with real worker processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import text, update

from fits_storage.config import Config
from fits_storage.db.engine import make_engine, make_session_factory
from fits_storage.orm import PreviewQueue, utcnow
from fits_storage.queues import get_queue
from tests.conftest import make_test_config
from tests.processes import start_recording_worker, stop, wait_for
from tests.test_web import ServerThread, free_port
from tests.workers.recording_worker import CREATE

NAMES = [f"N20251123S{i:04d}.fits" for i in range(1, 41)]


def fill_preview_queue(config: Config, names: list[str]) -> None:
    engine = make_engine(config.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(CREATE))
        with make_session_factory(engine)() as session:
            queue = get_queue("preview", config)
            for name in names:
                queue.add(session, name, "")
            session.commit()
    finally:
        engine.dispose()


def health(url: str) -> requests.Response:
    return requests.get(f"{url}/health", timeout=10)


def test_health_needs_a_live_worker_for_waiting_work(config: Config, tmp_path: Path) -> None:
    fill_preview_queue(config, NAMES)
    with ServerThread(config) as server:
        answer = health(server.url)
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["database"] == "ok"
        assert body["queues"]["preview"]["depth"] == len(NAMES)
        assert body["queues"]["preview"]["live_workers"] == 0
        assert body["queues"]["preview"]["oldest_waiting_seconds"] >= 0
        assert body["problems"] == ["preview: work waiting and no live worker"]
        assert body["workers"] == []

        # 1 s per entry: the queue still has work while the worker is seen alive.
        worker = start_recording_worker(
            config,
            "w1",
            stderr_to=tmp_path / "worker.log",
            TEST_WORK_SECONDS="1",
            TEST_WORK_FIXED="1",
        )
        try:
            seen: list[dict] = []

            def healthy() -> bool:
                answer = health(server.url)
                seen.append(answer.json())
                return answer.status_code == 200

            wait_for(healthy, 60, "/health to answer 200 with a worker running")
            body = seen[-1]
            preview = body["queues"]["preview"]
            assert preview["live_workers"] == 1
            assert preview["has_work"] or preview["in_progress"]  # healthy with work, not idle
            assert [w["name"] for w in body["workers"]] == ["recording_worker-w1"]
            assert body["workers"][0]["pid"] == worker.pid
            assert body["workers"][0]["queue"] == "preview"
            assert body["workers"][0]["seconds_since_heartbeat"] < 10

            # A worker killed outright stops counting once its heartbeat is a few beats old.
            worker.send_signal(signal.SIGKILL)
            worker.wait(15)
            wait_for(lambda: health(server.url).status_code == 503, 60, "/health to see it gone")
            assert health(server.url).json()["workers"] == []
        finally:
            stop(worker)


def test_health_is_503_when_postgresql_is_unreachable(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    config = make_test_config(tmp_path, url)
    with ServerThread(config) as server:
        answer = health(server.url)
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "error"
        assert body["database"] != "ok" and "127.0.0.1" in body["database"]
        assert body["problems"] == ["database"]


def test_health_is_200_with_nothing_to_do(config: Config) -> None:
    with ServerThread(config) as server:
        answer = health(server.url)
        assert answer.status_code == 200, answer.text
        assert answer.json()["queues"]["ingest"] == {
            "depth": 0,
            "deferred": 0,
            "in_progress": 0,
            "failed": 0,
            "oldest_waiting_seconds": None,
            "has_work": False,
            "estimated": [],
            "live_workers": 0,
        }


def test_healthz_stays_the_cheap_probe(config: Config) -> None:
    fill_preview_queue(config, NAMES[:1])  # work and no worker: /health is 503, /healthz is not
    with ServerThread(config) as server:
        assert requests.get(f"{server.url}/healthz", timeout=10).json() == {
            "status": "ok",
            "database": "ok",
        }


def test_deferred_work_counts_once_it_is_due(config: Config) -> None:
    """An entry backing off is not work yet (200); once its time has come it is (503), even
    though no worker is there to promote it."""
    fill_preview_queue(config, NAMES[:1])
    engine = make_engine(config.database_url)
    try:
        with ServerThread(config) as server:
            for shift, status in ((timedelta(hours=1), 200), (-timedelta(seconds=1), 503)):
                with engine.begin() as conn:
                    conn.execute(update(PreviewQueue).values(after=utcnow() + shift))
                answer = health(server.url)
                assert answer.status_code == status, answer.text
                assert answer.json()["queues"]["preview"]["deferred"] == 1
    finally:
        engine.dispose()
