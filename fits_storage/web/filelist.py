"""``GET /jsonfilelist/present/filename=<name>/path=<p>``: what this server holds, for exporters.

Selection terms are separated by '/': ``present`` (the only state listed), ``filename=`` (with
or without ``.bz2``: both forms match) and ``path=``; at least one of the last two is needed.
``pending_ingest`` is true while a waiting or in-progress ingest entry exists for that exact
file, or an upload entry (received, not yet stored): a newer version is on its way, so an
exporter should wait rather than send again. Failed entries do not count.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from fits_storage.orm import DiskFile, File, IngestQueue, UploadQueue
from fits_storage.queues import Status
from fits_storage.web.state import app_state, read_session

router = APIRouter()

PENDING = (Status.WAITING.value, Status.IN_PROGRESS.value)


def parse_selection(selection: str) -> dict[str, str]:
    """``'present/filename=x.fits'`` -> ``{'filename': 'x.fits'}``; ValueError if unknown."""
    terms: dict[str, str] = {}
    for term in filter(None, selection.split("/")):
        key, sep, value = term.partition("=")
        if term == "present":
            continue
        if not sep or key not in ("filename", "path") or key in terms:
            raise ValueError(f"unknown or repeated selection term {term!r}")
        terms[key] = value
    if not terms:
        raise ValueError("give filename=<name> and/or path=<path>")
    return terms


def bz2_forms(name: str) -> tuple[str, str]:
    base = name.removesuffix(".bz2")
    return base, base + ".bz2"


def _pending(model: type[IngestQueue] | type[UploadQueue]):  # type: ignore[no-untyped-def]
    return exists().where(
        model.filename == DiskFile.filename,
        model.path == DiskFile.path,
        model.status.in_(PENDING),
    )


def present_files(session: Session, terms: dict[str, str]) -> list[dict]:
    """The present diskfiles matching ``terms``, as the exporters expect them."""
    pending = or_(_pending(IngestQueue), _pending(UploadQueue)).label("pending_ingest")
    query = (
        select(DiskFile, File.name, pending)
        .join(File, DiskFile.file_id == File.id)
        .where(DiskFile.present.is_(True))
        .order_by(DiskFile.filename, DiskFile.path, DiskFile.id)
    )
    if "filename" in terms:
        query = query.where(DiskFile.filename.in_(bz2_forms(terms["filename"])))
    if "path" in terms:
        query = query.where(and_(DiskFile.path == terms["path"]))
    return [
        {
            "name": name,
            "filename": df.filename,
            "path": df.path,
            "compressed": df.compressed,
            "file_size": df.file_size,
            "data_size": df.data_size,
            "file_md5": df.file_md5,
            "data_md5": df.data_md5,
            "lastmod": _iso(df.lastmod),
            "entrytime": _iso(df.entrytime),
            "present": df.present,
            "canonical": df.canonical,
            "pending_ingest": bool(is_pending),
        }
        for df, name, is_pending in session.execute(query).all()
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@router.get("/jsonfilelist/{selection:path}")
def jsonfilelist(request: Request, selection: str) -> list[dict]:
    try:
        terms = parse_selection(selection)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    with read_session(app_state(request)) as session:
        return present_files(session, terms)
