"""Staff login: the login page, logout, signed session cookies, CSRF tokens, and
``require_staff``, the dependency every staff page and action uses.

A session is a cookie holding the user name, an expiry, a random nonce and a digest of the
user's password hash, signed with HMAC-SHA256 (``web.secret``). Nothing is kept on the server;
a new password or a removed account ends every session, because the digest no longer matches.
The CSRF token of a session is an HMAC of its nonce: a form post must carry it, and a page of
another site cannot read it.

Anonymous visitors: an HTML page request is sent to ``/login`` (303); anything else (JSON,
form posts) gets 401. A post with a missing or wrong CSRF token gets 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from html import escape
from importlib import resources
from string import Template
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fits_storage.staff.accounts import session_stamp, verify
from fits_storage.web.secret import web_secret_key
from fits_storage.web.state import app_state, read_session

router = APIRouter()
log = logging.getLogger("fits_storage.web.auth")

COOKIE = "fits_storage_session"
MAX_FORM_BYTES = 64 * 1024
# Pages of ours must not be framed by another site (a hidden retry button under a click).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True)
class StaffSession:
    username: str
    expires: int
    nonce: str
    csrf_token: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, data: str) -> str:
    return _b64(hmac.new(key, f"{purpose}:{data}".encode(), hashlib.sha256).digest())


def _key(request: Request) -> bytes:
    """The signing key, read (or made) once per application."""
    holder = request.app.state
    if getattr(holder, "staff_secret", None) is None:
        holder.staff_secret = web_secret_key(app_state(request).config)
    return holder.staff_secret


def make_cookie(key: bytes, username: str, stamp: str, seconds: float) -> str:
    """A signed session value for ``username`` whose password hash is ``stamp``."""
    payload = {
        "u": username,
        "e": int(time.time() + seconds),
        "n": secrets.token_urlsafe(16),
        "p": _mac(key, "stamp", stamp)[:22],
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_mac(key, 'session', body)}"


def read_cookie(key: bytes, value: str) -> dict | None:
    """The payload of a genuine, unexpired session value, else None (tampered, expired, junk)."""
    body, _, signature = value.partition(".")
    if not body or not hmac.compare_digest(signature.encode(), _mac(key, "session", body).encode()):
        return None
    try:
        payload = json.loads(_unb64(body))
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("e"), int):
        return None
    return payload if payload["e"] > time.time() else None


def current_session(request: Request, db: Session | None = None) -> StaffSession | None:
    """The request's staff session, if its cookie is genuine, unexpired, and its user still
    has the password it logged in with (looked up with ``db``, or a session of its own)."""
    state, key = app_state(request), _key(request)
    value = request.cookies.get(COOKIE)
    payload = read_cookie(key, value) if value else None
    if payload is None:
        return None
    if db is None:
        with read_session(state) as session:
            stamp = session_stamp(session, str(payload.get("u")))
    else:
        stamp = session_stamp(db, str(payload.get("u")))
    if stamp is None or not hmac.compare_digest(
        str(payload.get("p")), _mac(key, "stamp", stamp)[:22]
    ):
        return None
    nonce = str(payload["n"])
    return StaffSession(payload["u"], payload["e"], nonce, _mac(key, "csrf", nonce))


def wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def require_staff(request: Request) -> StaffSession:
    """Dependency of every staff page and action: the session, or 303 to /login for a browser
    asking for a page, 401 for anything else."""
    return staff_or_refuse(request)


def staff_or_refuse(request: Request, db: Session | None = None) -> StaffSession:
    """``require_staff``, looking the user up with ``db`` when given (one session less)."""
    found = current_session(request, db)
    if found is not None:
        return found
    if wants_html(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, headers={"Location": f"/login?next={quote(target, safe='')}"})
    raise HTTPException(401, "log in first: POST /login")


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the only kind our pages send), at most ``MAX_FORM_BYTES``."""
    if request.headers.get("content-type", "").split(";")[0].strip() not in (
        "application/x-www-form-urlencoded",
        "",
    ):
        raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "the form is not UTF-8") from exc
    return {name: values[-1] for name, values in fields.items()}


def check_csrf(staff: StaffSession, form: dict[str, str]) -> None:
    """403 unless the form carries this session's CSRF token."""
    if not hmac.compare_digest(form.get("csrf_token", "").encode(), staff.csrf_token.encode()):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def safe_next(target: str | None) -> str:
    """Where to go after login: a path of this site only (never ``//host`` or a URL)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/queuestatus"


def render(name: str, **values: str) -> str:
    """A page from ``web/templates``; every value is HTML-escaped here."""
    text = resources.files("fits_storage.web").joinpath("templates", name).read_text("utf-8")
    return Template(text).substitute({k: escape(v) for k, v in values.items()})


def page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


@router.get("/login")
def login_page(request: Request, next: str = "") -> HTMLResponse:  # noqa: A002
    return page(render("login.html", next=safe_next(next), message="", username=""))


@router.post("/login")
async def login(request: Request) -> Response:
    state = app_state(request)
    form = await read_form(request)
    username, password = form.get("username", ""), form.get("password", "")
    target = safe_next(form.get("next"))

    def check() -> str | None:
        with state.session_factory.begin() as session:
            user = verify(session, username, password)
            return None if user is None else user.password_hash

    stamp = await run_in_threadpool(check)
    if stamp is None:
        log.warning("login refused for user %r from %s", username[:64], _client(request))
        html = render(
            "login.html", next=target, message="Wrong user name or password.", username=username
        )
        return page(html, 401)
    log.info("user %r logged in from %s", username, _client(request))
    response = RedirectResponse(target, status_code=303)
    seconds = state.config.web_session_seconds
    response.set_cookie(
        COOKIE,
        make_cookie(_key(request), username, stamp, seconds),
        max_age=int(seconds),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    staff = await run_in_threadpool(require_staff, request)
    check_csrf(staff, await read_form(request))
    log.info("user %r logged out", staff.username)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"
