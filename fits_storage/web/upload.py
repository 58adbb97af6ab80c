"""``POST /upload_file/<path>/<filename>``: receive one file into the upload staging directory.

The shared secret comes in the cookie ``gemini_fits_upload_auth``. The body is streamed to a
temporary name beside its destination (never held in memory), hashed as it arrives, and renamed
to ``upload_staging_dir/<path>/<filename>`` only once it is complete, fsynced and matches the md5
the client stated, if it stated one: header ``Content-MD5`` (32 hex digits, or base64 of the
16-byte digest as in RFC 1864) or query parameter ``md5=<hex>``. The answer lists what was
received: ``[{"filename", "path", "size", "md5"}]``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from fits_storage.config import Config
from fits_storage.db.engine import session_scope
from fits_storage.orm import FileUploadLog
from fits_storage.queues import get_queue
from fits_storage.storage import AtomicFile, BadName, StoredFile, relative_name, split_target
from fits_storage.web.state import app_state

router = APIRouter()
log = logging.getLogger("fits_storage.web.upload")

AUTH_COOKIE = "gemini_fits_upload_auth"
BUFFER = 1024 * 1024
HEX_MD5 = re.compile(r"[0-9a-fA-F]{32}")


def authorised(given: str | None, secrets: tuple[str, ...]) -> bool:
    """Constant-time comparison against every accepted secret; no secret configured: no one."""
    if not given:
        return False
    supplied = given.encode()
    matches = [hmac.compare_digest(supplied, secret.encode()) for secret in secrets if secret]
    return any(matches)


def stated_md5(header: str | None, query: str | None) -> str | None:
    """The md5 the client says it sent, as lowercase hex; ValueError if malformed or conflicting."""
    values = []
    if header:
        header = header.strip()
        if HEX_MD5.fullmatch(header):
            values.append(header.lower())
        else:
            try:
                raw = base64.b64decode(header, validate=True)
            except binascii.Error:
                raw = b""
            if len(raw) != 16:
                raise ValueError("Content-MD5 must be 32 hex digits or base64 of 16 bytes")
            values.append(raw.hex())
    if query:
        if not HEX_MD5.fullmatch(query.strip()):
            raise ValueError("md5 must be 32 hex digits")
        values.append(query.strip().lower())
    if len(set(values)) > 1:
        raise ValueError("Content-MD5 header and md5 parameter disagree")
    return values[0] if values else None


def open_staging_file(config: Config, filename: str, path: str) -> AtomicFile:
    """A temporary file beside ``staging/<path>/<filename>``, refused if it would land outside
    the staging directory (a symlink planted inside it, say)."""
    staging = config.upload_staging_dir.resolve()
    dest = staging / relative_name(filename, path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.parent.resolve().is_relative_to(staging):
        raise BadName(f"{path!r} leads outside the staging directory")
    return AtomicFile(dest)


def record_upload(
    factory: sessionmaker[Session],
    config: Config,
    filename: str,
    path: str,
    received: StoredFile,
    client: str | None,
) -> None:
    """The upload log row and the upload queue entry, in one transaction."""
    with session_scope(factory) as session:
        session.add(
            FileUploadLog(
                filename=filename, path=path, size=received.size, md5=received.md5, client=client
            )
        )
        get_queue("upload", config).add(session, filename, path)


@router.post("/upload_file/{target:path}")
async def upload_file(request: Request, target: str, md5: str | None = None) -> list[dict]:
    state = app_state(request)
    config = state.config
    client = request.client.host if request.client else None
    if not authorised(request.cookies.get(AUTH_COOKIE), config.upload_auth_cookie):
        log.warning("upload of %r from %s refused: missing or wrong auth cookie", target, client)
        raise HTTPException(403, "missing or wrong upload authorisation cookie")
    try:
        path, filename = split_target(target)
        expected_md5 = stated_md5(request.headers.get("content-md5"), md5)
        length = request.headers.get("content-length")
        expected_size = int(length) if length is not None else None
    except ValueError as exc:  # BadName is a ValueError
        raise HTTPException(400, f"bad upload request: {exc}") from exc
    try:
        out = await run_in_threadpool(open_staging_file, config, filename, path)
    except BadName as exc:
        raise HTTPException(400, f"bad upload request: {exc}") from exc

    try:
        buffer = bytearray()
        try:
            async for chunk in request.stream():
                buffer += chunk
                if len(buffer) >= BUFFER:
                    data, buffer = bytes(buffer), bytearray()
                    await run_in_threadpool(out.write, data)
        except ClientDisconnect:
            log.warning(
                "upload of %s from %s: client went away after %d bytes",
                target,
                client,
                out.size + len(buffer),
            )
            raise HTTPException(400, "client disconnected before the end of the body") from None
        if buffer:
            await run_in_threadpool(out.write, bytes(buffer))
        if expected_size is not None and out.size != expected_size:
            raise HTTPException(
                400, f"received {out.size} bytes, Content-Length said {expected_size}"
            )
        if expected_md5 is not None and out.md5 != expected_md5:
            log.warning("upload of %s: md5 %s, client stated %s", target, out.md5, expected_md5)
            raise HTTPException(400, f"md5 mismatch: received {out.md5}, stated {expected_md5}")
        received = await run_in_threadpool(out.commit)
    finally:
        if not out.done:
            out.abort()

    try:
        await run_in_threadpool(
            record_upload, state.session_factory, config, filename, path, received, client
        )
    except Exception as exc:
        log.exception("upload of %s stored but not recorded", target)
        raise HTTPException(503, f"received but could not record the upload: {exc}") from exc
    log.info("received %s (%d bytes, md5 %s) from %s", target, received.size, received.md5, client)
    return [{"filename": filename, "path": path, "size": received.size, "md5": received.md5}]
