"""``GET /jsonqastate/<selection>``: each selected file's data label, filename, md5 and QA
state, for the observing database (ODB), as FitsStorage answers it.

The ODB asks ``/jsonqastate/Gemini-North/present/RAW/obsid=GN-2018B-CAL-171-20`` (or
``progid=``, a date, a date range): see :mod:`fits_storage.web.selection` for the terms. Like
FitsStorage it lists canonical versions unless told otherwise, is open (no cookie: the answer
holds no more than the file lists do) and has no row limit; the keys of each item are
FitsStorage's: ``data_label``, ``filename``, ``data_md5``, ``entrytime``, ``qa_state``.
"""

from __future__ import annotations

from datetime import datetime, time

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from fits_storage.orm import DiskFile, File, Header
from fits_storage.web.selection import SelectionError, UrlSelection, parse_url_selection
from fits_storage.web.state import app_state, read_session

router = APIRouter()

SITE_PREFIX = {"Gemini-North": "N", "Gemini-South": "S"}


def raw_files() -> ColumnElement[bool]:
    """Files as the instrument wrote them, not processed (FitsStorage's ``RAW``), as the
    descriptors decided at ingest."""
    return Header.reduction == "RAW"


def site_files(site: str) -> ColumnElement[bool]:
    """A site's files: by TELESCOP, or by the file name's first letter when it has none."""
    prefix = SITE_PREFIX[site]
    return or_(
        Header.telescope == site,
        and_(Header.telescope.is_(None), File.name.like(f"{prefix}%")),
    )


def filtered(query: Select, selection: UrlSelection) -> Select:
    """``query`` (over header, diskfile and file) restricted to ``selection``."""
    canonical = True if selection.canonical is None else selection.canonical
    query = query.where(DiskFile.canonical.is_(canonical))
    if selection.present is not None:
        query = query.where(DiskFile.present.is_(selection.present))
    if selection.site:
        query = query.where(site_files(selection.site))
    if selection.raw:
        query = query.where(raw_files())
    for column, value in (
        (Header.program_id, selection.program_id),
        (Header.observation_id, selection.observation_id),
        (Header.data_label, selection.data_label),
        (File.name, selection.filename.removesuffix(".bz2") if selection.filename else None),
    ):
        if value is not None:
            query = query.where(column == value)
    if selection.dates:
        first, after = selection.dates
        query = query.where(
            Header.ut_datetime >= datetime.combine(first, time()),
            Header.ut_datetime < datetime.combine(after, time()),
        )
    return query


def qa_states(session: Session, selection: UrlSelection) -> list[dict]:
    query = (
        select(
            Header.data_label, DiskFile.filename, DiskFile.data_md5, DiskFile.entrytime,
            Header.qa_state,
        )  # fmt: skip
        .join(DiskFile, Header.diskfile_id == DiskFile.id)
        .join(File, DiskFile.file_id == File.id)
        .order_by(DiskFile.filename, DiskFile.id)
    )
    return [
        {
            "data_label": label,
            "filename": filename,
            "data_md5": md5,
            "entrytime": str(entrytime),
            "qa_state": qa_state,
        }
        for label, filename, md5, entrytime, qa_state in session.execute(
            filtered(query, selection)
        )
    ]


@router.get("/jsonqastate/{selection:path}")
def jsonqastate(request: Request, selection: str) -> list[dict]:
    try:
        parsed = parse_url_selection(selection)
    except SelectionError as exc:
        raise HTTPException(400, str(exc)) from exc
    if not parsed.given & {"observation", "date", "filename"}:
        raise HTTPException(
            400, "select an observation (progid=, obsid=, datalabel=), a date or a file name"
        )
    with read_session(app_state(request)) as session:
        return qa_states(session, parsed)
