"""``POST /upload_file/<path>/<filename>``: receive one file into the upload staging directory.

The shared secret comes in the cookie ``gemini_fits_upload_auth``. The body is streamed to a
temporary name beside its destination (never held in memory), hashed as it arrives, and renamed
to ``upload_staging_dir/<path>/<filename>`` only once it is complete, fsynced and matches the md5
the client stated, if it stated one: header ``Content-MD5`` (32 hex digits, or base64 of the
16-byte digest as in RFC 1864) or query parameter ``md5=<hex>``, and passes the FITS structure
check as it arrives (whole for a plain file, the first header of a compressed one: see
``upload.fitsstream``). The answer lists what was received:
``[{"filename", "path", "size", "md5"}]``.

A client's mistake is a 4xx and leaves nothing behind (no file, no directory, no row): 400 a
refused name or request, 408 a body that stalls for ``upload_read_timeout`` seconds, 409 a name
that is a directory or lies under a file, 422 bytes that are not FITS; 507 says the staging disk
is full.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import hmac
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from fits_storage.config import Config
from fits_storage.db.engine import session_scope
from fits_storage.orm import FileUploadLog
from fits_storage.queues import get_queue
from fits_storage.storage import (
    AtomicFile,
    Store,
    StoredFile,
    check_data_name,
    relative_name,
    split_target,
)
from fits_storage.storage.base import tree_clash
from fits_storage.upload.fitsstream import DoorCheck, NotFits
from fits_storage.upload.store import lock_upload_name
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


class Refused(Exception):
    """An upload refused with an HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def make_parents(root: Path, directory: Path) -> list[Path]:
    """Create ``directory`` (inside ``root``) and return the directories that were created, so
    that a refused upload can remove them again; a file in the way is a 409."""
    missing = []
    place = directory
    while place != root and not place.is_dir():
        missing.append(place)
        place = place.parent
    created: list[Path] = []
    try:
        for place in reversed(missing):
            place.mkdir()
            created.append(place)
    except (FileExistsError, NotADirectoryError):
        remove_dirs(created)
        raise Refused(409, f"{place.relative_to(root)} is a file, not a directory") from None
    except OSError as exc:
        remove_dirs(created)
        raise disk_problem(exc) from exc
    return created


def remove_dirs(created: list[Path]) -> None:
    """Remove directories made for an upload that failed, deepest first, if still empty."""
    for place in reversed(created):
        try:
            place.rmdir()
        except OSError:
            return  # another upload uses it now


class Staging:
    """One upload on its way into ``upload_staging_dir``: a temporary file beside its staged
    name, the directories made for it, and the FITS structure check fed as bytes arrive."""

    def __init__(self, config: Config, store: Store, filename: str, path: str) -> None:
        staging = config.upload_staging_dir.resolve()
        name = check_data_name(config, filename, path)
        self.dest = staging / name
        if problem := tree_clash(staging, name) or store.clash(filename, path):
            raise Refused(409, problem)
        self.created = make_parents(staging, self.dest.parent)
        if not self.dest.parent.resolve().is_relative_to(staging):
            remove_dirs(self.created)
            raise Refused(400, f"{path!r} leads outside the staging directory")
        try:
            self.out = AtomicFile(self.dest)
        except OSError as exc:
            remove_dirs(self.created)
            raise disk_problem(exc) from exc
        self.check = DoorCheck(filename, config.max_uncompressed_bytes)

    def write(self, data: bytes) -> None:
        """Write and check ``data`` (after a structure problem the check only waits for the
        end of the body, to answer it)."""
        self.check.feed(data)
        try:
            self.out.write(data)
        except OSError as exc:
            raise disk_problem(exc) from exc

    def finish(self) -> None:
        """Raise Refused unless the bytes passed the door's check (then only commit() is left)."""
        try:
            self.check.finish()
        except NotFits as exc:
            raise Refused(422, f"not a complete FITS file: {exc}") from exc

    def abort(self) -> None:
        if not self.out.done:
            self.out.abort()
        remove_dirs(self.created)


def disk_problem(exc: OSError) -> Exception:
    """A full staging disk is 507 Insufficient Storage; any other disk error stays an error."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Refused(507, f"the archive's upload staging disk is full: {exc.strerror}")
    return exc


def record_upload(
    factory: sessionmaker[Session],
    config: Config,
    staging: Staging,
    filename: str,
    path: str,
    client: str | None,
) -> StoredFile:
    """Rename the upload into place, then its log row and upload queue entry, in one
    transaction holding the name's upload lock: log order is rename order (the last row is
    the bytes kept), and ``ingest_uploaded_file`` never claims bytes whose row is uncommitted."""
    with session_scope(factory) as session:
        lock_upload_name(session, filename, path)
        try:
            received = staging.out.commit()
        except IsADirectoryError as exc:
            raise Refused(409, f"{relative_name(filename, path)} is a directory") from exc
        except OSError as exc:
            raise disk_problem(exc) from exc
        session.add(
            FileUploadLog(
                filename=filename, path=path, size=received.size, md5=received.md5, client=client
            )
        )
        get_queue("upload", config).add(session, filename, path)
    return received


async def next_chunk(chunks: AsyncIterator[bytes], timeout: float) -> bytes | None:
    """The next piece of the body, None at its end; a client that sends nothing for
    ``timeout`` seconds gets 408 (uvicorn itself would wait for ever)."""
    try:
        return await asyncio.wait_for(anext(chunks), timeout)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise Refused(408, f"no part of the body arrived for {timeout:g} seconds") from None


@router.post("/upload_file/{target:path}")
async def upload_file(request: Request, target: str, md5: str | None = None) -> list[dict]:
    try:
        return await receive(request, target, md5)
    except Refused as exc:
        raise HTTPException(exc.status, exc.reason) from None


async def receive(request: Request, target: str, md5: str | None) -> list[dict]:
    state = app_state(request)
    config = state.config
    client = request.client.host if request.client else None
    if not authorised(request.cookies.get(AUTH_COOKIE), config.upload_auth_cookie):
        log.warning("upload of %r from %s refused: missing or wrong auth cookie", target, client)
        raise Refused(403, "missing or wrong upload authorisation cookie")
    try:
        path, filename = split_target(target)
        expected_md5 = stated_md5(request.headers.get("content-md5"), md5)
        length = request.headers.get("content-length")
        expected_size = int(length) if length is not None else None
        staging = await run_in_threadpool(Staging, config, state.store, filename, path)
    except ValueError as exc:  # BadName is a ValueError
        raise Refused(400, f"bad upload request: {exc}") from exc

    try:
        buffer = bytearray()
        chunks = aiter(request.stream())
        try:
            while (chunk := await next_chunk(chunks, config.upload_read_timeout)) is not None:
                buffer += chunk
                if len(buffer) >= BUFFER:
                    data, buffer = bytes(buffer), bytearray()
                    await run_in_threadpool(staging.write, data)
        except ClientDisconnect:
            log.warning(
                "upload of %s from %s: client went away after %d bytes",
                target,
                client,
                staging.out.size + len(buffer),
            )
            raise Refused(400, "client disconnected before the end of the body") from None
        if buffer:
            await run_in_threadpool(staging.write, bytes(buffer))
        received = staging.out.size
        if expected_size is not None and received != expected_size:
            raise Refused(400, f"received {received} bytes, Content-Length said {expected_size}")
        if expected_md5 is not None and staging.out.md5 != expected_md5:
            log.warning(
                "upload of %s: md5 %s, client stated %s", target, staging.out.md5, expected_md5
            )
            raise Refused(400, f"md5 mismatch: received {staging.out.md5}, stated {expected_md5}")
        await run_in_threadpool(staging.finish)
        try:
            stored = await run_in_threadpool(
                record_upload, state.session_factory, config, staging, filename, path, client
            )
        except Refused:
            raise
        except Exception as exc:
            log.exception("upload of %s received but not recorded", target)
            raise Refused(503, f"received but could not record the upload: {exc}") from exc
    except Refused as exc:
        log.warning("upload of %s from %s refused (%d): %s", target, client, exc.status, exc)
        raise
    finally:
        staging.abort()
    log.info("received %s (%d bytes, md5 %s) from %s", target, stored.size, stored.md5, client)
    return [{"filename": filename, "path": path, "size": stored.size, "md5": stored.md5}]
