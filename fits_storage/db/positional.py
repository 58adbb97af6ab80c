"""Long statements run with ``$n`` placeholders through psycopg's raw cursor (PostgreSQL).

psycopg turns a ``%(name)s`` query into PostgreSQL's ``$n`` form on every execution, and caches
that only for queries under 4 kB with at most 50 parameters. The statement that writes a new
file's rows has about 70 parameters in 5 kB: splitting it cost 0.35 ms a file, and SQLAlchemy's
handling of the execution another 0.3 ms, a third of the statement's whole client cost. Here
the statement is compiled once to ``$n`` form with its parameter order, and each execution
hands psycopg a list of values.

psycopg prepares a statement on the server after five executions with the same parameter
types, and it takes those types from the values: None, an int by its size (smallint, integer
or bigint), a float, a timestamp. A header row's 70 values give a new combination whenever a
keyword is missing or a number is larger, and each combination is planned again, executed five
times unprepared and kept as a prepared statement of its own. Every parameter here is cast in
the SQL to its column's type, so a plain value of that type is sent as text of unknown type
(as psycopg sends a str) and the cast gives it its type: the statement has one combination,
is prepared once, and keeps one plan. A value of any other kind is adapted by psycopg as
before.

Errors come back as SQLAlchemy's exceptions, as from ``Connection.execute``; a lost connection
is invalidated, so the pool never hands it out again; the engine's ``before_cursor_execute``
and ``after_cursor_execute`` listeners are called around the statement, as SQLAlchemy calls
them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Float, Integer, String, Time
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

from fits_storage.db.errors import is_database_lost


@dataclass(frozen=True)
class Positional:
    """A statement's SQL with ``$n`` placeholders, the parameter name of each ``n`` and the
    kind of value it is sent as text for (None: adapted by psycopg)."""

    sql: str
    names: tuple[str, ...]
    kinds: tuple[str | None, ...]


@functools.cache
def _dialect() -> pg_psycopg.PGDialect_psycopg:
    return pg_psycopg.dialect(paramstyle="numeric_dollar")


def positional(statement: ClauseElement) -> Positional:
    """``statement`` compiled for :func:`execute_positional`; every parameter must be a
    plain value psycopg adapts itself (none is bound in the statement)."""
    compiled = statement.compile(dialect=_dialect())
    if any(value is not None for value in compiled.params.values()):
        raise ValueError("a positional statement must bind no constants")
    sql, names = str(compiled), tuple(compiled.positiontup or ())
    kinds = tuple(
        _kind(compiled.binds[name].type) if _always_cast(sql, number) else None
        for number, name in enumerate(names, start=1)
    )
    return Positional(sql, names, kinds)


def _always_cast(sql: str, number: int) -> bool:
    """Whether every use of ``$number`` in ``sql`` is cast to a type (``$n::T``, ``CAST($n AS
    T)``): only then may its value be sent as text of unknown type."""
    uses = len(re.findall(rf"\${number}(?!\d)", sql))
    cast = len(re.findall(rf"\${number}::|CAST\(\${number} AS ", sql))
    return uses > 0 and uses == cast


def _kind(type_: TypeEngine[Any]) -> str | None:
    """The kind of plain value a parameter of ``type_`` is sent as text for."""
    if isinstance(type_, Boolean):
        return "bool"
    if isinstance(type_, Integer):
        return "int"
    if isinstance(type_, Float) and (type_.precision or 53) > 24:  # double precision
        return "float"  # (text for a numeric or a real would be rounded otherwise)
    if isinstance(type_, DateTime):
        return "datetime with zone" if type_.timezone else "datetime"
    if isinstance(type_, Date):
        return "date"
    if isinstance(type_, Time):
        return "time"
    if isinstance(type_, String):
        return "text"
    return None


def _sent(kind: str | None, value: Any) -> Any:
    """``value`` as text its parameter's cast reads as psycopg's adaptation would have given
    it; any other value, and every value of a parameter of no kind, as it is. A timestamp with
    a zone is left to psycopg for a column without one (the cast converts it to the session's
    zone, where text would have its zone ignored)."""
    if kind is None or value is None:
        return value
    kind_of = type(value)
    if kind_of is str:
        return value
    if kind_of is int and kind in ("int", "float"):
        return int.__repr__(value)
    if kind_of is float and kind == "float":
        return float.__repr__(value)
    if kind_of is bool and kind == "bool":
        return "true" if value else "false"
    naive = getattr(value, "tzinfo", None) is None
    if (
        (kind_of is datetime and (kind == "datetime with zone" or (kind == "datetime" and naive)))
        or (kind_of is date and kind == "date")
        or (kind_of is time and kind == "time" and naive)
    ):
        return value.isoformat()
    return value


def execute_positional(
    connection: Connection, statement: Positional, params: Mapping[str, Any]
) -> Sequence[Any] | None:
    """The first row ``statement`` returns with ``params`` on ``connection`` (in its
    transaction, or in autocommit if it is set so), or None."""
    import psycopg  # the driver of every PostgreSQL engine here; imported only when used

    driver = connection.connection.driver_connection
    values = [_sent(k, params[n]) for n, k in zip(statement.names, statement.kinds, strict=True)]
    dispatch = connection.dispatch
    try:
        with psycopg.RawCursor(driver) as cursor:
            # the engine's listeners see the statement as they would through SQLAlchemy (the
            # worker's run-time limit cancels a statement it interrupts on the server)
            dispatch.before_cursor_execute(connection, cursor, statement.sql, values, None, False)
            cursor.execute(statement.sql, values)
            dispatch.after_cursor_execute(connection, cursor, statement.sql, values, None, False)
            return cursor.fetchone()
    except psycopg.Error as error:
        wrapped = sa_exc.DBAPIError.instance(
            statement.sql, values, error, psycopg.Error, hide_parameters=True
        )
        if is_database_lost(wrapped):
            connection.invalidate(error)
        raise wrapped from error
