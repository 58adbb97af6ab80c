"""The summit's other files on the archive: ``GET /obslogs/<selection>`` and ``GET /miscfiles``
(JSON lists of present versions); their bytes come from ``GET /file/<name>`` like any file.

``/obslogs/`` takes a UT date ``YYYYMMDD``, a range ``YYYYMMDD-YYYYMMDD`` and/or a program id
(bare or ``progid=``), as FitsStorage's obslog summary does. ``/miscfiles`` takes the query
parameters ``program`` and ``name`` (parts of the program id and of the file name, any case),
as FitsStorage's miscfile search does, and answers at most ``MISCFILE_LIMIT`` files.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from fits_storage.orm import DiskFile, MiscFile, Obslog
from fits_storage.web.selection import SelectionError, parse_url_selection
from fits_storage.web.state import app_state, read_session

router = APIRouter()

MISCFILE_LIMIT = 500


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _file(df: DiskFile) -> dict:
    return {
        "filename": df.filename,
        "path": df.path,
        "file_size": df.file_size,
        "file_md5": df.file_md5,
        "lastmod": _iso(df.lastmod),
        "entrytime": _iso(df.entrytime),
    }


@router.get("/obslogs/{selection:path}")
def obslogs(request: Request, selection: str) -> list[dict]:
    try:
        parsed = parse_url_selection(selection)
        parsed.only({"date", "observation", "present"}, "observing logs")
    except SelectionError as exc:
        raise HTTPException(400, str(exc)) from exc
    if parsed.observation_id or parsed.data_label:
        raise HTTPException(400, "observing logs are selected by program, not observation")
    if parsed.dates is None and parsed.program_id is None:
        raise HTTPException(400, "select a date (YYYYMMDD), a date range or a program id")
    query = (
        select(Obslog, DiskFile)
        .join(DiskFile, Obslog.diskfile_id == DiskFile.id)
        .where(DiskFile.present.is_(True))
        .order_by(Obslog.date, DiskFile.filename)
    )
    if parsed.dates:
        query = query.where(Obslog.date >= parsed.dates[0], Obslog.date < parsed.dates[1])
    if parsed.program_id:
        query = query.where(Obslog.program_id == parsed.program_id)
    with read_session(app_state(request)) as session:
        return [
            {
                **_file(df),
                "date": log.date.isoformat() if log.date else None,
                "program_id": log.program_id,
            }
            for log, df in session.execute(query).all()
        ]


def _contains(text: str) -> str:
    escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@router.get("/miscfiles")
def miscfiles(request: Request, program: str = "", name: str = "") -> list[dict]:
    query = (
        select(MiscFile, DiskFile)
        .join(DiskFile, MiscFile.diskfile_id == DiskFile.id)
        .where(DiskFile.present.is_(True))
        .order_by(DiskFile.filename)
        .limit(MISCFILE_LIMIT)
    )
    if program.strip():
        query = query.where(MiscFile.program_id.ilike(_contains(program), escape="\\"))
    if name.strip():
        query = query.where(DiskFile.filename.ilike(_contains(name), escape="\\"))
    with read_session(app_state(request)) as session:
        return [
            {
                **_file(df),
                "release": _iso(misc.release),
                "description": misc.description,
                "program_id": misc.program_id,
                "original_name": misc.original_name,
            }
            for misc, df in session.execute(query).all()
        ]
