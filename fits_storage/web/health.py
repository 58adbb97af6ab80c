"""``GET /healthz``: the process answers and its database does too."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from fits_storage.web.state import app_state

router = APIRouter()


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    try:
        with app_state(request).engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        first = (str(exc).strip().splitlines() or [""])[0]
        return JSONResponse({"status": "error", "database": first}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
