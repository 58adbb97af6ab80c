"""``GET /healthz``: the process answers and its database does too (the cheap liveness probe).

``GET /health``: the state of the whole flow for load balancers and monitoring, without login:
the database, each queue's figures, and the live workers' last heartbeats. 503 when the
database cannot be read, or when a queue has work (due now, or in progress) and no live worker.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from fits_storage.queues.overview import all_queues
from fits_storage.queues.registry import worker_states
from fits_storage.web.state import app_state, read_session

router = APIRouter()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    try:
        with app_state(request).engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        first = (str(exc).strip().splitlines() or [""])[0]
        return JSONResponse({"status": "error", "database": first}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/health")
def health(request: Request) -> JSONResponse:
    try:
        with read_session(app_state(request)) as session:
            queues = all_queues(session)
            workers = [w for w in worker_states(session, running_only=True) if w.live]
    except Exception as exc:  # noqa: BLE001 - any failure to read means unhealthy
        body = {"status": "error", "database": _first_line(exc), "problems": ["database"]}
        return JSONResponse(body, status_code=503)
    problems = []
    report: dict[str, Any] = {}
    for queue in queues:
        serving = sum(1 for w in workers if w.queue == queue.name)
        if (queue.has_work or queue.in_progress) and not serving:
            problems.append(f"{queue.name}: work waiting and no live worker")
        report[queue.name] = {
            "depth": queue.depth,
            "deferred": queue.deferred,
            "in_progress": queue.in_progress,
            "failed": queue.failed,
            "oldest_waiting_seconds": queue.oldest_waiting_seconds,
            "has_work": queue.has_work,
            "estimated": list(queue.estimated),
            "live_workers": serving,
        }
    body = {
        "status": "error" if problems else "ok",
        "database": "ok",
        "problems": problems,
        "queues": report,
        "workers": [
            {
                "name": w.name,
                "queue": w.queue,
                "host": w.host,
                "pid": w.pid,
                "started": w.started.isoformat(),
                "last_heartbeat": w.heartbeat.isoformat(),
                "seconds_since_heartbeat": round(w.seconds_since_heartbeat, 3),
            }
            for w in workers
        ],
    }
    return JSONResponse(body, status_code=503 if problems else 200)
