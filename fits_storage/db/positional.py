"""Long statements run with ``$n`` placeholders through psycopg's raw cursor (PostgreSQL).

psycopg turns a ``%(name)s`` query into PostgreSQL's ``$n`` form on every execution, and caches
that only for queries under 4 kB with at most 50 parameters. The statement that writes a new
file's rows has about 70 parameters in 5 kB: splitting it cost 0.35 ms a file, and SQLAlchemy's
handling of the execution another 0.3 ms, a third of the statement's whole client cost. Here
the statement is compiled once to ``$n`` form with its parameter order, and each execution
hands psycopg a list of values that it adapts as usual (it still prepares the statement on the
server after a few executions).

Errors come back as SQLAlchemy's exceptions, as from ``Connection.execute``; a lost connection
is invalidated, so the pool never hands it out again; the engine's ``before_cursor_execute``
and ``after_cursor_execute`` listeners are called around the statement, as SQLAlchemy calls
them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ClauseElement

from fits_storage.db.errors import is_database_lost


@dataclass(frozen=True)
class Positional:
    """A statement's SQL with ``$n`` placeholders, and the parameter name of each ``n``."""

    sql: str
    names: tuple[str, ...]


@functools.cache
def _dialect() -> pg_psycopg.PGDialect_psycopg:
    return pg_psycopg.dialect(paramstyle="numeric_dollar")


def positional(statement: ClauseElement) -> Positional:
    """``statement`` compiled for :func:`execute_positional`; every parameter must be a
    plain value psycopg adapts itself (none is bound in the statement)."""
    compiled = statement.compile(dialect=_dialect())
    if any(value is not None for value in compiled.params.values()):
        raise ValueError("a positional statement must bind no constants")
    return Positional(str(compiled), tuple(compiled.positiontup or ()))


def execute_positional(
    connection: Connection, statement: Positional, params: Mapping[str, Any]
) -> Sequence[Any] | None:
    """The first row ``statement`` returns with ``params`` on ``connection`` (in its
    transaction, or in autocommit if it is set so), or None."""
    import psycopg  # the driver of every PostgreSQL engine here; imported only when used

    driver = connection.connection.driver_connection
    values = [params[name] for name in statement.names]
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
