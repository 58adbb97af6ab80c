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
from typing import Any

from sqlalchemy import DateTime, Float, Select, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

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


def _columns() -> list[Any]:
    return [getattr(Header, name) for name in FIELDS] + [
        File.name,
        DiskFile.data_md5,
        DiskFile.entrytime,
        DiskFile.file_id,
        DiskFile.filename,
        DiskFile.path,
    ]


def base_query() -> Select[Any]:
    return (
        select(*_columns())
        .join(DiskFile, DiskFile.id == Header.diskfile_id)
        .join(File, File.id == DiskFile.file_id)
        .where(DiskFile.canonical, DiskFile.present)
    )


def to_found(row: Sequence[Any]) -> Found:
    n = len(FIELDS)
    return Found(dict(zip(FIELDS, row[:n], strict=True)), *row[n:])


def order_terms(plan: Plan) -> list[Any]:
    when = plan.frame.get("ut_datetime")
    terms: list[Any] = []
    if when is not None:
        apart = seconds_apart(Header.ut_datetime, literal(when, DateTime()))
        score = apart / (plan.rule.order.time_days * 86400.0)
        scale = plan.rule.order.wavelength_scale
        wavelength = plan.frame.get("central_wavelength")
        if scale is not None and wavelength is not None:
            score = score + func.abs(Header.central_wavelength - wavelength) / scale(plan.frame)
        terms.append(score)
    return terms + [DiskFile.entrytime.desc(), Header.id.desc()]


def score(plan: Plan, candidate: Frame) -> float:
    """The candidate's ranking score in Python (lower is better), as ``order_terms`` computes
    it in SQL; a candidate without a time ranks last."""
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


def query(plan: Plan) -> Select[Any]:
    """The one statement answering the plan: every check in SQL, ranked, limited."""
    return (
        base_query()
        .where(*(check.sql(Header) for check in plan.checks))
        .order_by(*order_terms(plan))
        .limit(plan.howmany)
    )


def find(session: Session, plan: Plan) -> list[Found]:
    return [to_found(row) for row in session.execute(query(plan))]


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
    statement = (
        base_query()
        .where(*(check.sql(Header) for check in plan.kind))
        .order_by(*order_terms(plan))
        .limit(EXPLAIN_LIMIT + len(taken))
    )
    rejected = []
    for row in session.execute(statement):
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
        .join(DiskFile, DiskFile.id == Header.diskfile_id)
        .join(File, File.id == DiskFile.file_id)
        .where(Header.id == header_id)
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
