"""``POST /update_headers``: the observing database's header updates (QA state, site quality,
release date, other keywords), queued for ``service_fileops_queue``.

The secret comes in the cookie ``gemini_fits_api_authorization`` and is compared in constant
time with ``api_auth_cookie``. The body is the ODB's list (the "old format")
``[{"filename" or "data_label": ..., "values": {...}, "reject_new": bool}, ...]``, or the staff
script's ``{"request": [...], "batch": bool}``. The answer has one result per item, in order:
``{"result": true, "id": ...}`` when the item was checked and queued, else
``{"result": false, "id": ..., "error": "..."}``; a bad item never hides the others. Accepted
means queued: the edit, its re-ingest and export follow (``docs/header_updates.md``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fits_storage.config import Config
from fits_storage.db.engine import session_scope
from fits_storage.fileops.request import HeaderUpdate, queue_update
from fits_storage.fileops.targets import NotFound, by_data_label, by_filename, primary_keywords
from fits_storage.fileops.values import BadValue, keyword_changes
from fits_storage.ingest.source import describe
from fits_storage.orm import utcnow
from fits_storage.web.state import AppState, app_state
from fits_storage.web.upload import authorised

router = APIRouter()
log = logging.getLogger("fits_storage.web.update_headers")

AUTH_COOKIE = "gemini_fits_api_authorization"
MAX_BODY = 4 * 1024 * 1024
MAX_ITEMS = 10_000


class BadItem(ValueError):
    """One item refused; the message says why."""


def refused(status: int, error: str) -> JSONResponse:
    return JSONResponse({"result": False, "error": error}, status_code=status)


def items_of(body: Any) -> list[Any]:
    """The list of items of either format (ValueError if it is neither)."""
    if isinstance(body, dict):
        if not isinstance(body.get("request"), list):
            raise ValueError('the new format is {"request": [...], "batch": false}')
        body = body["request"]
    if not isinstance(body, list):
        raise ValueError('the body must be a JSON list of items, or {"request": [...]}')
    if len(body) > MAX_ITEMS:
        raise ValueError(f"more than {MAX_ITEMS} items in one request")
    return body


def item_id(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    for key in ("filename", "data_label"):
        if isinstance(item.get(key), str) and item[key]:
            return item[key]
    return None


def check_item(item: Any) -> tuple[str | None, str | None, dict[str, Any], bool]:
    """(filename, data label, keyword changes, reject_new) of a well-formed item."""
    if not isinstance(item, dict):
        raise BadItem("an item must be an object with filename or data_label, and values")
    filename, label = item.get("filename"), item.get("data_label")
    for name, value in (("filename", filename), ("data_label", label)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BadItem(f"{name} must be a non-empty string")
    if filename is None and label is None:
        raise BadItem("no filename or data_label names the file")
    reject_new = item.get("reject_new", False)
    if not isinstance(reject_new, bool):
        raise BadItem("reject_new must be true or false")
    unknown = set(item) - {"filename", "data_label", "values", "reject_new"}
    if unknown:
        raise BadItem(f"unknown field(s) {', '.join(sorted(unknown))}")
    try:
        changes = keyword_changes(item.get("values"))
    except BadValue as exc:
        raise BadItem(str(exc)) from None
    return filename, label, changes, reject_new


def requester_of(request: Request) -> str:
    client = request.client.host if request.client else "unknown"
    agent = request.headers.get("user-agent", "")
    return f"{client} ({agent})"[:255] if agent else client


def queue_item(
    session: Session, config: Config, item: Any, requested: str, requester: str
) -> str:
    """Check one item and queue it; returns the request id (raise BadItem or NotFound)."""
    filename, label, changes, reject_new = check_item(item)
    target = by_filename(session, filename) if filename else by_data_label(session, label or "")
    if reject_new:
        present = primary_keywords(session, target.diskfile_id)
        missing = [k for k in changes if present is not None and k not in present]
        if missing:
            raise BadItem(f"reject_new: {target.filename} has no {', '.join(missing)}; not added")
    update = HeaderUpdate(
        changes=changes,
        reject_new=reject_new,
        values=item["values"],
        requested=requested,
        requester=requester,
        item_id=item_id(item) or "",
    )
    request_id = queue_update(session, config, target.filename, target.path, update)
    log.info(
        "header update of %s queued as %s for %s: %s",
        describe(target.path, target.filename),
        request_id,
        requester,
        changes,
    )
    return request_id


def queue_items(state: AppState, items: list[Any], requester: str) -> list[dict[str, Any]]:
    """Check every item and queue the good ones, in one transaction; one result per item."""
    results: list[dict[str, Any]] = []
    requested = utcnow().isoformat()
    with session_scope(state.session_factory) as session:
        for item in items:
            ident = item_id(item)
            try:
                queue_item(session, state.config, item, requested, requester)
            except (BadItem, NotFound) as exc:
                results.append({"result": False, "id": ident, "error": str(exc)})
            else:
                results.append({"result": True, "id": ident})
    return results


@router.post("/update_headers")
async def update_headers(request: Request) -> JSONResponse:
    state = app_state(request)
    given = request.cookies.get(AUTH_COOKIE)
    client = request.client.host if request.client else None
    if not given:
        log.warning("update_headers from %s refused: no %s cookie", client, AUTH_COOKIE)
        return refused(401, f"the {AUTH_COOKIE} cookie is missing")
    if not authorised(given, state.config.api_auth_cookie):
        log.warning("update_headers from %s refused: wrong %s cookie", client, AUTH_COOKIE)
        return refused(403, f"the {AUTH_COOKIE} cookie is wrong")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        return refused(413, f"the body is larger than {MAX_BODY} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return refused(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        items = items_of(json.loads(raw))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        return refused(400, f"not a header update request: {exc}")
    try:
        results = await run_in_threadpool(queue_items, state, items, requester_of(request))
    except SQLAlchemyError as exc:
        log.error("update_headers: database unavailable: %s", " ".join(str(exc).split())[:300])
        return refused(503, "the database is unavailable: nothing was queued; try again")
    return JSONResponse(results)
