"""``GET /calibrations/<name>`` (JSON) and ``GET /calmgr/<caltype>/<name>`` (FitsStorage's
calibration manager XML, which the reduction software reads): a frame's calibrations, from the
cache when it is fresh, computed on the spot otherwise.

``<name>`` is a file name (with or without ``.bz2``) or a data label. ``?explain=1`` adds,
for each type, the checks of the rule and the candidates rejected with the fields that failed:
a JSON object instead of the plain list, comments in the XML (whose elements stay as the
reduction software expects them). The ``X-Calibrations-Source`` header says ``cache`` or
``computed``.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from fits_storage.cal import CALTYPES, Found, explain, find_frame, plan_for
from fits_storage.cal.answer import Answer, answer
from fits_storage.storage import BadName
from fits_storage.storage.names import check_component
from fits_storage.web.state import app_state, read_session

router = APIRouter()
NAMESPACE = "http://www.gemini.edu/xml/gsaCalibrations/v1.0"
SOURCE_HEADER = "X-Calibrations-Source"


def _frame(session: Session, name: str) -> Found:
    try:
        check_component(name)
    except BadName as exc:
        raise HTTPException(400, str(exc)) from exc
    frame = find_frame(session, name)
    if frame is None:
        raise HTTPException(404, f"no file or data label {name!r} in the archive")
    return frame


def _explain_flag(value: str) -> bool:
    if value.lower() in ("", "0", "false", "no"):
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    raise HTTPException(400, f"explain must be 1 or 0, not {value!r}")


def _url(request: Request, found: Found) -> str:
    return f"{str(request.base_url).rstrip('/')}/file/{found.filename}"


def _explanation(session: Session, frame: Found, result: Answer) -> list[dict[str, Any]]:
    out = []
    for caltype, founds in result.calibrations.items():
        plan = plan_for(frame.fields, caltype)
        rejected = explain(session, frame.fields, caltype, [f.id for f in founds])
        out.append(
            {
                "caltype": caltype,
                "rule": [] if plan is None else [check.describe() for check in plan.checks],
                "howmany": None if plan is None else plan.howmany,
                "rejected": [
                    {
                        "filename": r.candidate.filename,
                        "data_label": r.candidate.data_label,
                        "failed": [
                            {"field": f["field"], "wanted": f["wanted"], "got": _json(f["got"])}
                            for f in r.failed
                        ],
                    }
                    for r in rejected
                ],
            }
        )
    return out


def _json(value: Any) -> Any:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else value


@router.get("/calibrations/{name}")
def get_calibrations(request: Request, name: str, explain: str = "") -> Response:
    state = app_state(request)
    with_explain = _explain_flag(explain)
    with read_session(state) as session:
        frame = _frame(session, name)
        result = answer(session, frame)
        rows = [
            {
                "caltype": caltype,
                "filename": found.filename,
                "data_label": found.data_label,
                "md5": found.md5,
                "rank": rank,
                "url": _url(request, found),
            }
            for caltype, founds in result.calibrations.items()
            for rank, found in enumerate(founds)
        ]
        body: Any = rows
        if with_explain:
            body = {
                "filename": frame.filename,
                "data_label": frame.data_label,
                "source": result.source,
                "calibrations": rows,
                "explain": _explanation(session, frame, result),
            }
    return JSONResponse(body, headers={SOURCE_HEADER: result.source})


def _comment(text: str) -> str:
    return "<!-- " + text.replace("--", "- -") + " -->"


@router.get("/calmgr/{caltype}/{name}")
def get_calmgr(request: Request, caltype: str, name: str, explain: str = "") -> Response:
    state = app_state(request)
    if caltype not in CALTYPES:
        raise HTTPException(
            400, f"unknown calibration type {caltype!r}; known: {', '.join(CALTYPES)}"
        )
    with_explain = _explain_flag(explain)
    with read_session(state) as session:
        frame = _frame(session, name)
        result = answer(session, frame, [caltype])
        notes = _explanation(session, frame, result) if with_explain else []
    now = datetime.now(UTC).replace(tzinfo=None)
    lines = [
        '<?xml version="1.0" encoding="UTF-8" ?>',
        f'<calibration_associations xmlns="{NAMESPACE}">',
        _comment(f"Generated by {socket.gethostname()} for GET request at {now} UTC "
                 f"(from the {result.source})"),
        " <dataset>",
        f"  <datalabel>{escape(frame.data_label or '')}</datalabel>",
        f"  <filename>{escape(frame.filename)}</filename>",
        f"  <md5>{escape(frame.md5)}</md5>",
    ]
    founds = result.calibrations[caltype]
    for found in founds:
        lines += [
            "  <calibration>",
            f"    <caltype>{escape(caltype)}</caltype>",
            f"    <datalabel>{escape(found.data_label or '')}</datalabel>",
            f"    <filename>{escape(found.filename)}</filename>",
            f"    <md5>{escape(found.md5)}</md5>",
            f"    <url>{escape(_url(request, found))}</url>",
            "  </calibration>",
        ]
    if not founds:
        lines.append("  " + _comment(f"NO CALIBRATION FOUND for caltype {caltype}"))
    for note in notes:
        lines.append("  " + _comment("RULE: " + ("; ".join(note["rule"]) or "none")))
        for rejected in note["rejected"]:
            why = ", ".join(
                f"{f['field']} {f['wanted']} (got {f['got']!r})" for f in rejected["failed"]
            )
            lines.append(
                "  " + _comment(f"REJECTED {rejected['filename']}: {why or 'ranked lower'}")
            )
    lines += [" </dataset>", "</calibration_associations>", ""]
    return Response(
        "\n".join(lines), media_type="text/xml", headers={SOURCE_HEADER: result.source}
    )
