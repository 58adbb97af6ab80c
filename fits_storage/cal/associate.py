"""Calibration association in SQL: one query per frame and calibration type, on the header
index ``ix_header_calibration (instrument, observation_type, reduction, ut_datetime)``, over
the canonical present version of every file. Ranking: closest in time first (or FitsStorage's
time-and-wavelength score), then the newest ingest, then the newest header, so that ties
resolve the same way every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, Float, Select, String, bindparam, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from fits_storage.cal.checks import Check, Contains, HasTag, Like, Op
from fits_storage.cal.instruments import applicable, plan_for
from fits_storage.cal.rules import FIELDS, Frame, Plan
from fits_storage.orm import DiskFile, File, Header

EXPLAIN_LIMIT = 100  # rejected candidates listed by ?explain=1, nearest in time first


class seconds_apart(FunctionElement[float]):  # noqa: N801 - an SQL function's name
    """|a - b| in seconds for two timestamps, on PostgreSQL and SQLite."""

    type = Float()
    inherit_cache = True
    name = "seconds_apart"


@compiles(seconds_apart)
def _seconds_apart_pg(element: seconds_apart, compiler: Any, **kw: Any) -> str:
    a, b = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"abs(extract(epoch from ({a} - {b})))"


@compiles(seconds_apart, "sqlite")
def _seconds_apart_sqlite(element: seconds_apart, compiler: Any, **kw: Any) -> str:
    a, b = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(abs(julianday({a}) - julianday({b})) * 86400.0)"


@dataclass(frozen=True)
class Found:
    """A calibration (or a candidate) as read: its header fields plus where its file is."""

    fields: dict[str, Any]
    filename: str  # the file's name (without .bz2), as /file serves it
    md5: str  # of the data, as FitsStorage's calmgr gave it
    entrytime: datetime
    file_id: int
    stored_name: str  # the diskfile's name and path, as queue entries name it
    path: str

    @property
    def id(self) -> int:
        return self.fields["id"]

    @property
    def data_label(self) -> str | None:
        return self.fields["data_label"]


HEADER = Header.__table__
DISKFILE = DiskFile.__table__
FILE = File.__table__


def _columns() -> list[Any]:
    return [HEADER.c[name] for name in FIELDS] + [
        FILE.c.name,
        DISKFILE.c.data_md5,
        DISKFILE.c.entrytime,
        DISKFILE.c.file_id,
        DISKFILE.c.filename,
        DISKFILE.c.path,
    ]


def base_query() -> Select[Any]:
    """Header fields and file of every canonical present version (Core, not ORM entities:
    an association is a few rows and the ORM's per-statement overhead would dominate)."""
    return (
        select(*_columns())
        .select_from(HEADER)
        .join(DISKFILE, DISKFILE.c.id == HEADER.c.diskfile_id)
        .join(FILE, FILE.c.id == DISKFILE.c.file_id)
        .where(DISKFILE.c.canonical, DISKFILE.c.present)
    )


def to_found(row: Sequence[Any]) -> Found:
    n = len(FIELDS)
    return Found(dict(zip(FIELDS, row[:n], strict=True)), *row[n:])


def score(plan: Plan, candidate: Frame) -> float:
    """The candidate's ranking score in Python (lower is better), as the SQL ranks; a
    candidate without a time ranks last."""
    when, then = plan.frame.get("ut_datetime"), candidate.get("ut_datetime")
    if when is None:
        return 0.0
    if then is None:
        return float("inf")
    value = abs((then - when).total_seconds()) / (plan.rule.order.time_days * 86400.0)
    scale = plan.rule.order.wavelength_scale
    wavelength = plan.frame.get("central_wavelength")
    if scale is not None and wavelength is not None:
        cal = candidate.get("central_wavelength")
        if cal is None:
            return float("inf")
        value += abs(cal - wavelength) / scale(plan.frame)
    return value


Shape = tuple[str, type[Op], int]
OrderShape = tuple[bool, float, bool]


def _order(plan: Plan) -> tuple[OrderShape, dict[str, Any]]:
    """The ranking's form and its parameters for this frame."""
    order = plan.rule.order
    when = plan.frame.get("ut_datetime")
    wavelength = plan.frame.get("central_wavelength")
    weighted = when is not None and order.wavelength_scale is not None and wavelength is not None
    params: dict[str, Any] = {}
    if when is not None:
        params["o_when"] = when
    if weighted:
        params["o_wavelength"] = wavelength
        params["o_scale"] = order.wavelength_scale(plan.frame)  # type: ignore[misc]
    return (when is not None, order.time_days, weighted), params


@lru_cache(maxsize=2048)
def _statement(shapes: tuple[Shape, ...], order: OrderShape, limit: int) -> Select[Any]:
    """The statement for checks of these shapes (parameters ``p<i>_<j>``) and this ranking,
    built once and reused for every frame of the same form."""
    conditions = []
    for i, (field, op_type, count) in enumerate(shapes):
        column = HEADER.c[field]
        kind = String() if op_type in (Contains, HasTag, Like) else column.type
        params = tuple(bindparam(f"p{i}_{j}", type_=kind) for j in range(count))
        conditions.append(op_type.sql(column, params))
    ranked, time_days, weighted = order
    terms: list[Any] = []
    if ranked:
        apart = seconds_apart(HEADER.c.ut_datetime, bindparam("o_when", type_=DateTime()))
        score = apart / (time_days * 86400.0)
        if weighted:
            wavelength = bindparam("o_wavelength", type_=Float())
            score = score + func.abs(HEADER.c.central_wavelength - wavelength) / bindparam(
                "o_scale", type_=Float()
            )
        terms.append(score)
    terms += [DISKFILE.c.entrytime.desc(), HEADER.c.id.desc()]
    return base_query().where(*conditions).order_by(*terms).limit(limit)


def prepared(plan: Plan, checks: Sequence[Check], limit: int) -> tuple[Select[Any], dict]:
    """The statement and parameters finding up to ``limit`` rows passing ``checks``, ranked
    for the plan's frame."""
    params: dict[str, Any] = {}
    for i, check in enumerate(checks):
        params.update({f"p{i}_{j}": value for j, value in enumerate(check.params())})
    order, order_params = _order(plan)
    params.update(order_params)
    return _statement(tuple(check.shape() for check in checks), order, limit), params


def query(plan: Plan) -> tuple[Select[Any], dict]:
    """The one statement answering the plan (every check in SQL, ranked, limited)."""
    return prepared(plan, plan.checks, plan.howmany)


def find(session: Session, plan: Plan) -> list[Found]:
    statement, params = query(plan)
    return [to_found(row) for row in session.connection().execute(statement, params)]


def associate(session: Session, frame: Frame, caltype: str) -> list[Found]:
    """The calibrations of ``caltype`` for the frame, best first (none if its instrument has
    no such rule)."""
    plan = plan_for(frame, caltype)
    return [] if plan is None else find(session, plan)


def associate_all(
    session: Session, frame: Frame, caltypes: Iterable[str] | None = None
) -> dict[str, list[Found]]:
    """Every applicable type's calibrations (or those of ``caltypes``)."""
    wanted = applicable(frame) if caltypes is None else list(caltypes)
    return {caltype: associate(session, frame, caltype) for caltype in wanted}


@dataclass(frozen=True)
class Rejected:
    candidate: Found
    failed: list[dict[str, Any]]  # [{"field", "wanted", "got"}]; empty: outranked


def explain(session: Session, frame: Frame, caltype: str, chosen: Iterable[int]) -> list[Rejected]:
    """The candidates of the right kind (same instrument, type and reduction state) that were
    not chosen, nearest in time first, each with the checks it failed (none: it passed them
    all but ranked below the ones returned)."""
    plan = plan_for(frame, caltype)
    if plan is None:
        return []
    taken = set(chosen)
    statement, params = prepared(plan, plan.kind, EXPLAIN_LIMIT + len(taken))
    rejected = []
    for row in session.connection().execute(statement, params):
        found = to_found(row)
        if found.id in taken:
            continue
        failed = [
            {"field": check.field, "wanted": check.describe(), "got": found.fields[check.field]}
            for check in plan.failures(found.fields)
        ]
        rejected.append(Rejected(found, failed))
    return rejected[:EXPLAIN_LIMIT]


def frame_of(session: Session, header_id: int) -> Found | None:
    row = session.execute(
        select(*_columns())
        .select_from(HEADER)
        .join(DISKFILE, DISKFILE.c.id == HEADER.c.diskfile_id)
        .join(FILE, FILE.c.id == DISKFILE.c.file_id)
        .where(HEADER.c.id == header_id)
    ).first()
    return None if row is None else to_found(row)


def find_frame(session: Session, name: str) -> Found | None:
    """The canonical present version of a file by name (with or without ``.bz2``) or, failing
    that, the newest frame with that data label."""
    file_name = name.removesuffix(".bz2")
    row = session.execute(base_query().where(File.name == file_name).limit(1)).first()
    if row is None:
        row = session.execute(
            base_query()
            .where(Header.data_label == name)
            .order_by(Header.ut_datetime.desc(), Header.id.desc())
            .limit(1)
        ).first()
    return None if row is None else to_found(row)


def frame_on(session: Session, filename: str, path: str) -> Found | None:
    """The present version at ``path``/``filename`` (a queue entry's file)."""
    row = session.execute(
        base_query()
        .where(DiskFile.filename == filename, DiskFile.path == path)
        .order_by(DiskFile.id.desc())
        .limit(1)
    ).first()
    return None if row is None else to_found(row)


def found_by_id(session: Session, ids: Iterable[int]) -> dict[int, Found]:
    """The headers of ``ids`` that are canonical present versions, by id."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows = session.execute(base_query().where(Header.id.in_(wanted)))
    return {found.id: found for found in map(to_found, rows)}
