"""``/queuestatus``: the queues as staff see them, and what staff may do to failed entries.

One tab per queue of ``queues.definitions.DEFINITIONS`` (a new queue appears by itself), each
with its counts, the first ``queuestatus_rows`` waiting entries in the order workers take them,
the newest failures and what is in progress. ``GET /queuestatus/json`` gives the same data to
scripts and to the page, which refreshes itself: it sends ``since=<tab>:<version>,...`` and
gets back only the tabs whose version changed. Retry, remove and retry-all are form posts with
the session's CSRF token; each is written to ``staffaudit`` and logged with the user.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fits_storage.orm.staff import StaffAudit
from fits_storage.queues import DEFINITIONS, QueueCounts, get_queue
from fits_storage.queues.engine import COUNT_CAP
from fits_storage.queues.review import (
    get_entry,
    overview,
    remove_failed,
    retry_all_failed,
    retry_failed,
)
from fits_storage.web.auth import (
    PAGE_HEADERS,
    StaffSession,
    check_csrf,
    page,
    read_form,
    render,
    require_staff,
    staff_or_refuse,
)
from fits_storage.web.state import AppState, app_state, read_session

router = APIRouter()
log = logging.getLogger("fits_storage.web.queuestatus")

REFRESH_MS = 2000
ACTIONS = ("retry", "remove", "retry_all")
STATIC = {"queuestatus.js": "text/javascript", "queuestatus.css": "text/css"}
# Columns that change every second while nothing happens: left out of a tab's version.
VOLATILE = ("run_seconds",)


def count_text(number: int, estimated: bool) -> str:
    """``1,234``; above the cap ``≥10,000`` (SQLite) or ``~1.2M`` (an estimate)."""
    if not estimated:
        return f"{number:,}"
    if number <= COUNT_CAP:
        return f"≥{COUNT_CAP:,}"
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if number >= size:
            return f"~{number / size:.1f}{suffix}".replace(".0", "")
    return f"~{number:,}"


def _iso(value: Any) -> Any:
    return value.isoformat(timespec="seconds") + "Z" if isinstance(value, datetime) else value


def _counts(counts: QueueCounts) -> dict[str, Any]:
    figures = {
        "waiting": counts.waiting,
        "in_progress": counts.in_progress,
        "failed": counts.failed,
        "deferred": counts.deferred,
        "total": counts.total,
    }
    text = {name: count_text(n, name in counts.estimated) for name, n in figures.items()}
    text["total"] = count_text(counts.total, bool(counts.estimated))
    return {
        **figures,
        "estimated": list(counts.estimated),
        "text": text,
        "oldest_waiting": _iso(counts.oldest_waiting),
        "next_deferred": _iso(counts.next_deferred),
    }


def _entry(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    shown = {name: _iso(value) for name, value in row.items() if name != "traceback"}
    if row.get("status") == "in_progress" and row.get("claimed_at"):
        shown["run_seconds"] = round((now - row["claimed_at"]).total_seconds(), 1)
    return shown


def version(tab: dict[str, Any]) -> str:
    """A digest of what the tab shows, ignoring ``VOLATILE`` figures."""
    stable = {
        part: [{k: v for k, v in e.items() if k not in VOLATILE} for e in value]
        if isinstance(value, list)
        else value
        for part, value in tab.items()
    }
    text = json.dumps(stable, sort_keys=True, default=str).encode()
    return hashlib.blake2b(text, digest_size=8).hexdigest()


def snapshot(state: AppState, session: Session) -> dict[str, Any]:
    """Every queue's tab, with its version, and the database's time now."""
    rows = state.config.queuestatus_rows
    queues = [get_queue(name, state.config) for name in DEFINITIONS]
    now, shown = overview(queues, session, rows)
    tabs = {}
    for name, (counts, lists) in zip(DEFINITIONS, shown.values(), strict=True):
        tab = {
            "table": DEFINITIONS[name].__tablename__,
            "counts": _counts(counts),
            **{part: [_entry(e, now) for e in entries] for part, entries in lists.items()},
        }
        tab["version"] = version(tab)
        tabs[name] = tab
    return {"now": _iso(now), "rows": rows, "queues": tabs}


def parse_since(since: str) -> dict[str, str]:
    """``ingest:ab12,export:cd34`` -> {"ingest": "ab12", ...}; junk parts are ignored."""
    known = {}
    for part in since.split(","):
        name, _, seen = part.partition(":")
        if name and seen:
            known[name] = seen
    return known


@router.get("/queuestatus")
def queuestatus_page(
    request: Request, staff: StaffSession = Depends(require_staff), notice: str = ""
) -> Response:
    html = render(
        "queuestatus.html",
        csrf_token=staff.csrf_token,
        username=staff.username,
        notice=notice[:300],
        refresh_ms=str(REFRESH_MS),
    )
    return page(html)


@router.get("/queuestatus/json")
def queuestatus_json(request: Request, since: str = "") -> JSONResponse:
    """All tabs; with ``since``, only those whose version differs (``unchanged`` names the
    others). The login is checked in the same database session as the data is read."""
    state = app_state(request)
    with read_session(state) as session:
        staff_or_refuse(request, session)
        data = snapshot(state, session)
    known = parse_since(since)
    unchanged = [name for name, tab in data["queues"].items() if known.get(name) == tab["version"]]
    for name in unchanged:
        del data["queues"][name]
    data["unchanged"] = unchanged
    data["order"] = list(DEFINITIONS)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


def _queue_or_404(name: str) -> str:
    if name not in DEFINITIONS:
        raise HTTPException(404, f"no queue {name!r}; queues: {', '.join(DEFINITIONS)}")
    return name


@router.get("/queuestatus/{queue}/entry/{entry_id}")
def queue_entry(
    request: Request, queue: str, entry_id: int, staff: StaffSession = Depends(require_staff)
) -> JSONResponse:
    """One entry with its error and full traceback."""
    state = app_state(request)
    with read_session(state) as session:
        row = get_entry(get_queue(_queue_or_404(queue), state.config), session, entry_id)
    if row is None:
        raise HTTPException(404, f"no entry {entry_id} in the {queue} queue (done or removed)")
    return JSONResponse({name: _iso(value) for name, value in row.items()})


def perform(
    state: AppState, username: str, queue_name: str, action: str, entry_id: int | None
) -> tuple[bool, str | None, int]:
    """Do a staff action and write its audit row in one transaction; (done, filename, count)."""
    queue = get_queue(queue_name, state.config)
    with state.session_factory.begin() as session:
        if action == "retry_all":
            settled = retry_all_failed(queue, session)
            filename = None
            done = True
        else:
            assert entry_id is not None
            row = get_entry(queue, session, entry_id)
            filename = row["filename"] if row else None
            if row is None or row["status"] != "failed":
                return False, filename, 0
            act = retry_failed if action == "retry" else remove_failed
            done = act(queue, session, entry_id)
            settled = int(done)
        if done:
            session.add(
                StaffAudit(
                    username=username,
                    action=action,
                    queue=queue_name,
                    entry_id=entry_id,
                    filename=filename if action != "retry_all" else f"{settled} entries",
                )
            )
    return done, filename, settled


@router.post("/queuestatus/{queue}/{action}")
async def queue_action(request: Request, queue: str, action: str) -> Response:
    staff = await run_in_threadpool(require_staff, request)
    form = await read_form(request)
    check_csrf(staff, form)
    _queue_or_404(queue)
    if action not in ACTIONS:
        raise HTTPException(404, f"no action {action!r}; actions: {', '.join(ACTIONS)}")
    entry_id = None
    if action != "retry_all":
        try:
            entry_id = int(form.get("entry_id", ""))
        except ValueError as exc:
            raise HTTPException(400, "entry_id must be a whole number") from exc
    state = app_state(request)
    done, filename, settled = await run_in_threadpool(
        perform, state, staff.username, queue, action, entry_id
    )
    what = f"{settled} failed entries" if action == "retry_all" else f"entry {entry_id}"
    if done:
        log.info(
            "user %r: %s %s in the %s queue%s",
            staff.username,
            action.replace("_all", " all"),
            what,
            queue,
            f" ({filename})" if filename else "",
        )
        notice = f"{action.replace('_all', ' all')}: {what} of {queue}" + (
            f" ({filename})" if filename else ""
        )
    else:
        notice = f"{what} of {queue} is no longer a failed entry; nothing done"
    if "text/html" in request.headers.get("accept", ""):
        target = "/queuestatus?" + urlencode({"tab": queue, "notice": notice})
        return RedirectResponse(target, status_code=303)
    body = {"done": done, "queue": queue, "action": action, "entry_id": entry_id}
    return JSONResponse({**body, "settled": settled, "notice": notice}, 200 if done else 409)


@router.get("/static/staff/{name}")
def static_file(name: str) -> Response:
    """The page's script and style sheet (package data; no secrets, no login)."""
    if name not in STATIC:
        raise HTTPException(404, "no such file")
    text = resources.files("fits_storage.web").joinpath("static", name).read_text("utf-8")
    headers = {**PAGE_HEADERS, "Cache-Control": "no-cache"}
    return Response(text, media_type=STATIC[name], headers=headers)
