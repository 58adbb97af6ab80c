"""``GET /file/<name>``: one file's bytes, streamed from the data store.

A file stored compressed is served decompressed when asked for without ``.bz2``, and a plain
one compressed when asked for with it, on the fly and in chunks.

What the headers state comes from the bytes actually streamed: ``Content-Length`` is the size
of the opened file (a newer version stored before its ingest is served whole, not cut at the
old size), and ``Content-MD5`` is sent only while those bytes are the ingested version (same
size and mtime, or same md5 in S3's metadata). Decompressed on the fly, a length is stated
only for the ingested version.

Decompression is bounded (:mod:`fits_storage.storage.compression`): blocks of 1 MiB, and
never more than the data size the response announced (or ``max_uncompressed_bytes`` when it
announces none), so a bz2 bomb costs the server no memory.
"""

from __future__ import annotations

import base64
import bz2
import mimetypes
from collections.abc import Iterator
from typing import BinaryIO

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from fits_storage.orm import DiskFile
from fits_storage.scan.names import FileKind, file_kind, is_miscfile_meta
from fits_storage.storage import CHUNK, BadName, FileStat, NotInStore, StorageError
from fits_storage.storage.compression import decompressed
from fits_storage.storage.names import check_component
from fits_storage.web.filelist import bz2_forms
from fits_storage.web.state import app_state, read_session

router = APIRouter()


def _raw(handle: BinaryIO) -> Iterator[bytes]:
    try:
        while data := handle.read(CHUNK):
            yield data
    finally:
        handle.close()


def _compressed(handle: BinaryIO) -> Iterator[bytes]:
    compressor = bz2.BZ2Compressor()
    try:
        while data := handle.read(CHUNK):
            if out := compressor.compress(data):
                yield out
        yield compressor.flush()
    finally:
        handle.close()


def _decompressed(handle: BinaryIO, limit: int) -> Iterator[bytes]:
    """The data of a bz2 stream, at most ``limit`` bytes (the Content-Length sent, or the
    ceiling): more, or corrupt data, ends the response early rather than sending what was not
    announced."""
    try:
        yield from decompressed(_raw(handle), "bz2", limit=limit, block=CHUNK)
    finally:
        handle.close()


def is_ingested_version(stat: FileStat, diskfile: DiskFile) -> bool:
    """Are the opened bytes the ones ingest recorded (so the database's sizes and md5s are
    theirs)? Not while a newer upload waits for its ingest."""
    if stat.size != diskfile.file_size:
        return False
    if stat.md5 is not None:
        return stat.md5 == diskfile.file_md5
    return stat.mtime_ns == diskfile.mtime_ns


def media_type(name: str) -> str:
    """FITS files are ``application/fits``; the summit's other files their usual type."""
    if name.endswith(".bz2"):
        return "application/x-bzip2"
    if file_kind(name) in (FileKind.OBSLOG, FileKind.MISCFILE) or is_miscfile_meta(name):
        return mimetypes.guess_type(name)[0] or "application/octet-stream"
    return "application/fits"


@router.get("/file/{name}")
def get_file(request: Request, name: str) -> StreamingResponse:
    state = app_state(request)
    try:
        check_component(name)
    except BadName as exc:
        raise HTTPException(400, str(exc)) from exc
    with read_session(state) as session:
        diskfile = session.scalars(
            select(DiskFile)
            .where(DiskFile.present.is_(True), DiskFile.filename.in_(bz2_forms(name)))
            .order_by(DiskFile.canonical.desc(), DiskFile.entrytime.desc(), DiskFile.id.desc())
            .limit(1)
        ).first()
    if diskfile is None:
        raise HTTPException(404, f"no file {name}")
    try:
        handle, stat = state.store.open_stat(diskfile.filename, diskfile.path)
    except NotInStore as exc:
        raise HTTPException(404, f"{name} is listed but missing from the data store") from exc
    except StorageError as exc:
        raise HTTPException(503, f"data store unavailable: {exc}") from exc
    ingested = is_ingested_version(stat, diskfile)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if diskfile.filename == name:
        body, headers["Content-Length"] = _raw(handle), str(stat.size)
        if ingested:
            headers["Content-MD5"] = base64.b64encode(bytes.fromhex(diskfile.file_md5)).decode()
    elif diskfile.filename == name + ".bz2":
        known = ingested and diskfile.data_size is not None
        limit = diskfile.data_size if known else state.config.max_uncompressed_bytes
        body = _decompressed(handle, limit)
        if known:
            headers["Content-Length"] = str(diskfile.data_size)
            if diskfile.data_md5:
                headers["Content-MD5"] = base64.b64encode(bytes.fromhex(diskfile.data_md5)).decode()
    else:
        body = _compressed(handle)
    media = media_type(name)
    return StreamingResponse(body, media_type=media, headers=headers)
