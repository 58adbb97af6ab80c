"""``GET /preview/<name>``: a file's preview JPEG (``?size=thumb`` for the thumbnail).

The name is a file name as ``/file`` takes it (with or without ``.bz2``). The preview of the
file's newest version that has one is served, with its md5 as a strong ETag, so a browser or
proxy revalidates cheaply and sees a new version's picture as soon as it replaces the old.
"""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import select

from fits_storage.config import Config
from fits_storage.orm import DiskFile, File, Preview, PreviewNote
from fits_storage.storage import BadName, NotInStore, StorageError
from fits_storage.storage.names import check_component
from fits_storage.storage.previews import PreviewStore, get_preview_store
from fits_storage.web.state import app_state, read_session

router = APIRouter()
SIZES = ("full", "thumb")
CACHE_CONTROL = "public, max-age=300, must-revalidate"


@lru_cache(maxsize=4)
def preview_store(config: Config) -> PreviewStore:
    """Made once per process: an S3 client costs ~0.1 s to build."""
    return get_preview_store(config)


@router.get("/preview/{name}")
def get_preview(request: Request, name: str, size: str = "full") -> Response:
    state = app_state(request)
    try:
        check_component(name)
    except BadName as exc:
        raise HTTPException(400, str(exc)) from exc
    if size not in SIZES:
        raise HTTPException(400, f"size must be one of {', '.join(SIZES)}, not {size!r}")
    file_name = name.removesuffix(".bz2")
    with read_session(state) as session:
        versions = (
            select(DiskFile.id)
            .join(File, File.id == DiskFile.file_id)
            .where(File.name == file_name)
        )
        found = session.execute(
            select(Preview.key, Preview.md5)
            .where(Preview.diskfile_id.in_(versions), Preview.size == size)
            .order_by(Preview.diskfile_id.desc())
            .limit(1)
        ).first()
        note = None
        if found is None:
            note = session.scalar(
                select(PreviewNote.reason)
                .where(PreviewNote.diskfile_id.in_(versions))
                .order_by(PreviewNote.diskfile_id.desc())
                .limit(1)
            )
    if found is None:
        why = f": {note}" if note else " (none has been made yet)"
        raise HTTPException(404, f"no preview of {file_name}{why}")
    key, md5 = found
    etag = f'"{md5}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    try:
        data = preview_store(state.config).get(key)
    except NotInStore as exc:
        raise HTTPException(404, f"no preview of {file_name}: its picture is missing") from exc
    except StorageError as exc:
        raise HTTPException(503, f"preview store unavailable: {exc}") from exc
    return Response(data, media_type="image/jpeg", headers=headers)
